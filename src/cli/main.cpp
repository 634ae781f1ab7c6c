// tlc: transfer-learning image classification. `tlc --help` lists the commands.
#include <c10/util/Exception.h>
#include <opencv2/core/utility.hpp>

#include <csignal>
#include <iostream>

#include "commands.h"
#include "tlc/device.h"
#include "tlc/error.h"
#include "tlc/trainer.h"

namespace {

// The first SIGINT/SIGTERM asks training to stop after the current step and write its checkpoint; a second
// one ends the program at once.
extern "C" void on_signal(int sig) {
  tlc::request_interrupt();
  std::signal(sig, SIG_DFL);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tlc: train an image classifier on top of a pretrained, frozen convolutional backbone (VGG16, "
               "EfficientNet-Lite0, ...) from a folder of images (one sub-folder per class), then classify new "
               "images."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tlc 0.1.0");
  int exit_code = 0;
  tlc::cli::setup_train(app, &exit_code);
  tlc::cli::setup_finetune(app, &exit_code);
  tlc::cli::setup_evaluate(app, &exit_code);
  tlc::cli::setup_predict(app, &exit_code);
  tlc::cli::setup_inspect(app, &exit_code);
  tlc::cli::setup_bench(app, &exit_code);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tlc::Interrupted& e) {
    std::cerr << "tlc: stopped: " << e.what() << "; continue with `tlc train --resume RUN_DIR`" << std::endl;
    return 130;
  } catch (const tlc::Error& e) {
    std::cerr << "tlc: error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::OutOfMemoryError& e) {
    std::cerr << "tlc: error: " << tlc::describe_gpu_oom(e.what_without_backtrace()) << std::endl;
    return 1;
  } catch (const c10::Error& e) {
    std::string w = e.what_without_backtrace();
    std::cerr << "tlc: error: " << w.substr(0, w.find('\n')) << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "tlc: error: " << e.what() << std::endl;
    return 1;
  }
  return exit_code;
}
