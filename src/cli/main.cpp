// tlc: transfer-learning image classification. `tlc --help` lists the commands.
#include <c10/util/Exception.h>
#include <opencv2/core/utility.hpp>

#include <algorithm>
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <vector>
#include <iostream>

#include "commands.h"
#include "tlc/device.h"
#include "tlc/dist.h"
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

// Levenshtein distance, for "did you mean" on a mistyped command.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// An unknown command as the first argument: say so, and name the closest command when one is near.
bool explain_unknown_command(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return false;
  const std::string given = argv[1];
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == given) return false;
    const size_t d = edit_distance(given, sub->get_name());
    if (d < best_d) best_d = d, best = sub->get_name();
  }
#if !TLC_WITH_SERVE
  if (given == "serve") {
    std::cerr << "tlc: error: this tlc was built without cpp-httplib, so it has no `serve` command: install "
                 "libcpp-httplib-dev (scripts/setup.sh does) and build again" << std::endl;
    return true;
  }
#endif
  std::cerr << "tlc: error: unknown command '" << given << "'";
  if (best_d <= std::max<size_t>(2, given.size() / 3)) std::cerr << "; did you mean '" << best << "'?";
  std::cerr << " (`tlc --help` lists the commands)" << std::endl;
  return true;
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
  tlc::cli::setup_export(app, &exit_code);
#if TLC_WITH_SERVE
  tlc::cli::setup_serve(app, &exit_code);
#endif
  install_signal_handlers();
  // Under torchrun or srun only train and finetune work as one job across the ranks; any other command runs on
  // rank 0 alone (its output once, not once per rank).
  try {
    const tlc::DistLaunch launch = tlc::DistLaunch::from_environment();
    const std::string command = argc > 1 ? argv[1] : "";
    if (launch.launched && launch.rank > 0 && command != "train" && command != "finetune") return 0;
  } catch (const tlc::Error& e) {
    std::cerr << "tlc: error: " << e.what() << std::endl;
    return 1;
  }
  const auto prefix = [] { return "tlc: " + tlc::rank_prefix(); };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() != 0 && explain_unknown_command(app, argc, argv)) return e.get_exit_code();
    return app.exit(e);
  } catch (const tlc::Interrupted& e) {
    std::cerr << prefix() << "stopped: " << e.what() << std::endl;  // the message names the command that continues
    return 130;
  } catch (const tlc::RankLost& e) {
    if (tlc::interrupt_requested()) {  // Ctrl-C reached the ranks at different points: another one stopped first
      std::cerr << prefix() << "stopped: interrupted (" << e.what() << ")" << std::endl;
      return 130;
    }
    std::cerr << prefix() << "error: " << e.what() << std::endl;
    return 1;
  } catch (const tlc::Error& e) {
    std::cerr << prefix() << "error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::OutOfMemoryError& e) {
    std::cerr << prefix() << "error: " << tlc::describe_gpu_oom(e.what_without_backtrace()) << std::endl;
    return 1;
  } catch (const c10::Error& e) {
    std::string w = e.what_without_backtrace();
    std::cerr << prefix() << "error: " << w.substr(0, w.find('\n')) << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << prefix() << "error: " << e.what() << std::endl;
    return 1;
  }
  return exit_code;
}
