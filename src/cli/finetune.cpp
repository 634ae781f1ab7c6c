#include <iostream>

#include "commands.h"
#include "tlc/run.h"

namespace tlc::cli {

void setup_finetune(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<FinetuneRunOptions>();
  CLI::App* sub = app.add_subcommand(
      "finetune", "Continue a trained run with a fine-tuning phase: unfreeze the last N backbone layers and train "
                  "them (and the head) at a low learning rate on the run's own data and split. The run folder is "
                  "updated in place (model.pt replaced atomically, history continued) unless --out is given.");
  sub->add_option("run_dir", opt->run_dir, "Run folder written by `tlc train`")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--fine-tune-layers", opt->fine_tune_layers,
                  "How many of the last backbone layers with parameters to unfreeze (`tlc inspect RUN/model.pt`)")
      ->required()->check(CLI::PositiveNumber);
  sub->add_option("--fine-tune-epochs", opt->fine_tune_epochs, "Epochs of fine-tuning")
      ->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--fine-tune-lr", opt->fine_tune_lr, "Learning rate (the seeds use 1e-5, 10x below the head's)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--out", opt->out_dir, "Write a new run folder here instead of updating run_dir");
  sub->add_option("--data", opt->data_dir, "Data folder (default: the run's own, from config.json)");
  sub->add_option("--threads", opt->threads, "Decoding threads (0: all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--memory-budget-mb", opt->memory_budget_mb, "Keep decoded images in RAM up to this many MiB")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_flag("--strict", opt->strict, "Stop with an error on the first undecodable image instead of skipping it");
  sub->add_flag_function("--no-progress", [opt](int64_t) { opt->progress = false; },
                         "No progress bars or periodic progress lines");
  add_training_flags(sub, opt->train);
  sub->callback([opt, exit_code] {
    run_finetune(*opt, std::cout);
    *exit_code = 0;
  });
}

}  // namespace tlc::cli
