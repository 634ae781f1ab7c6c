#include <iostream>

#include "commands.h"
#include "tlc/error.h"
#include "tlc/run.h"

namespace tlc::cli {

void setup_finetune(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<FinetuneRunOptions>();
  CLI::App* sub = app.add_subcommand(
      "finetune", "Continue a trained run with a fine-tuning phase: unfreeze the last N backbone layers and train "
                  "them (and the head) at a low learning rate on the run's own data and split. The run folder is "
                  "updated in place (model.pt replaced atomically, history continued) unless --out is given.");
  sub->add_option("run_dir", opt->run_dir, "Run folder written by `tlc train`")->check(CLI::ExistingDirectory);
  auto resume = std::make_shared<std::string>();
  sub->add_option("--resume", *resume,
                  "Continue the interrupted fine-tuning whose output folder is DIR (its finetune.json and "
                  "checkpoint.pt; the run folder itself when it was updated in place) with the settings it was "
                  "started with; only --threads and --no-progress may be given with it")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--fine-tune-layers", opt->fine_tune_layers,
                  "How many of the last backbone layers with parameters to unfreeze (`tlc inspect RUN/model.pt`); "
                  "this or --fine-tune-blocks is required unless --resume")
      ->check(CLI::PositiveNumber);
  sub->add_option("--fine-tune-blocks", opt->fine_tune_blocks,
                  "Instead of --fine-tune-layers (not with it): unfreeze the last N blocks (ResNet: 1 = layer4; "
                  "`tlc inspect RUN/model.pt` lists them)")
      ->check(CLI::PositiveNumber)->excludes("--fine-tune-layers");
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
  sub->callback([opt, resume, exit_code, sub] {
    if (!resume->empty()) {
      std::vector<std::string> other;
      for (const CLI::Option* o : sub->get_options())
        if (o->count() > 0 && o->get_name() != "--resume" && o->get_name() != "--threads" &&
            o->get_name() != "--no-progress" && o->get_name() != "--dist-timeout")
          other.push_back(o->get_name());
      if (!other.empty()) {
        std::string list;
        for (const auto& n : other) list += (list.empty() ? "" : ", ") + n;
        throw Error("--resume continues the fine-tuning with the settings it was started with (in " + *resume +
                    "/finetune.json); drop " + list + ", or start a new fine-tuning with --out");
      }
      opt->run_dir = *resume;
      opt->resume = true;
    } else if (opt->run_dir.empty()) {
      throw Error("give the run folder to fine-tune (tlc finetune RUN_DIR --fine-tune-layers N), or --resume DIR");
    } else if (sub->get_option("--fine-tune-layers")->count() == 0 &&
               sub->get_option("--fine-tune-blocks")->count() == 0) {
      throw Error("--fine-tune-layers (or --fine-tune-blocks) is required: how many of the last backbone layers "
                  "with parameters (or blocks) to unfreeze (`tlc inspect " + opt->run_dir + "/model.pt` lists them)");
    }
    join_distributed_world(opt->train);
    run_finetune(*opt, std::cout);
    *exit_code = 0;
  });
}

}  // namespace tlc::cli
