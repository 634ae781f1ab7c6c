// tlc: transfer-learning image classification. `tlc --help` lists the commands.
#include <c10/util/Exception.h>
#include <opencv2/core/utility.hpp>

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "commands.h"
#include "tlc/error.h"
#include "tlc/trainer.h"

namespace {

// SIGINT/SIGTERM: the first asks the running job to stop at its next check (once per batch in every long
// loop), write its checkpoint and exit with 130 and the command that continues it. The handler stays
// installed: a second signal ends the program at once (exit 130, the last checkpoint kept), except while a
// checkpoint is being written, which then completes first (the job stops right after it).
extern "C" void on_signal(int) {
  if (!tlc::interrupt_requested()) {
    tlc::request_interrupt();
    return;
  }
  if (tlc::critical_write_in_progress()) return;
  static const char msg[] = "\ntlc: stopped at once by a second signal; the last checkpoint written is kept\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  ::_exit(130);
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
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
  install_signal_handlers();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tlc::Interrupted& e) {
    std::cerr << "tlc: stopped: " << e.what() << std::endl;  // the message names the command that continues
    return 130;
  } catch (const tlc::Error& e) {
    std::cerr << "tlc: error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::OutOfMemoryError& e) {
    std::cerr << "tlc: error: out of GPU memory; use a smaller --batch-size (or --image-size, or --cache-memory-mb), "
                 "or --device cpu" << std::endl;
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
