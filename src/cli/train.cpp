#include <chrono>
#include <ctime>
#include <iostream>

#include "commands.h"
#include "tlc/dist.h"
#include "tlc/error.h"
#include "tlc/run.h"

namespace tlc::cli {

void add_training_flags(CLI::App* sub, TrainOptions& t) {
  sub->add_option("--batch-size", t.batch_size,
                  "Images per batch; in a distributed run (torchrun/srun) the global batch, split across the ranks, "
                  "so that any number of ranks trains the same model")->capture_default_str()->check(CLI::Range(1, 65536));
  sub->add_option("--optimizer", t.optimizer.name, "rmsprop (rho 0.9, eps 1e-7, as Keras), adam, sgd")
      ->capture_default_str()->check(CLI::IsMember({"rmsprop", "adam", "sgd"}));
  sub->add_option("--momentum", t.optimizer.momentum, "Momentum for sgd and rmsprop")
      ->capture_default_str()->check(CLI::Range(0.0, 0.999));
  sub->add_option("--augment", t.augment,
                  "Random views of the training images: none; a preset: flip (horizontal flips), light (flip, "
                  "rotate=10, zoom=1.1, translate=0.05), keras (flip, rotate=72: the TF tutorial's RandomFlip + "
                  "RandomRotation(0.2)), fastai (aug_transforms: flip, rotate=10, zoom=1.1, lighting=0.2, warp=0.2, "
                  "p=0.75), timm (crop=0.08, flip, brightness/contrast/saturation 0.4); or a list, later items "
                  "overriding: flip[=h|v|hv], vflip, rotate=DEGREES, zoom=FACTOR, translate=FRACTION_OF_SIZE, "
                  "crop=MIN_AREA_FRACTION, warp=MAGNITUDE, brightness=F, contrast=F, saturation=F, lighting=F, "
                  "p=PROBABILITY (per transform), e.g. flip,rotate=10,zoom=1.1,lighting=0.2. See docs/AUGMENTATION.md")
      ->capture_default_str()
      ->transform(CLI::Validator(
          [](std::string& s) {
            try {
              s = to_string(parse_augment(s));  // canonical, as config.json stores it
              return std::string();
            } catch (const Error& e) {
              return std::string(e.what());
            }
          },
          "SPEC"));
  sub->add_option("--augment-views", t.augment_views,
                  "With --augment other than none or flip: K > 0 draws K augmented views of each training image once "
                  "and caches their features with the plain one (each epoch trains on one of the K+1 per image, at "
                  "cached speed); 0 draws a fresh view per image per epoch through the backbone (no feature cache). "
                  "Not used by flip alone, whose two views are always both computed")
      ->capture_default_str()->check(CLI::Range(0, 64));
  sub->add_option("--cache-features", t.cache_features,
                  "Compute the frozen backbone's output once and reuse it every epoch (the pooled features while "
                  "only the head trains, the frozen prefix's activations while fine-tuning a Sequential backbone): "
                  "auto (when it fits --cache-memory-mb), on, off. Results do not depend on it")
      ->capture_default_str()->check(CLI::IsMember({"auto", "on", "off"}));
  sub->add_option("--cache-dir", t.cache_dir,
                  "Also keep pooled features on disk here, keyed by backbone file, image files (path, size, mtime), "
                  "image size and normalization, so a later run with other head settings skips extraction");
  sub->add_option("--cache-memory-mb", t.cache_memory_mb, "Memory budget of the feature caches in MiB")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--keep", t.keep, "Model to keep: last (after the last epoch) or best (lowest validation loss)")
      ->capture_default_str()->check(CLI::IsMember({"last", "best"}));
  sub->add_option("--patience", t.patience, "Stop a phase after N epochs without a lower validation loss (0: never)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--lr-schedule", t.lr_schedule, "constant, cosine (to 0 over the phase) or step")
      ->capture_default_str()->check(CLI::IsMember({"constant", "cosine", "step"}));
  sub->add_option("--lr-step-epochs", t.lr_step_epochs, "step schedule: epochs between drops")
      ->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--lr-gamma", t.lr_gamma, "step schedule: factor per drop")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  // The option writes into *cw when the command line is parsed, long after this function returned: the
  // callback owns it (a string that died with this scope corrupted the heap: a crash at exit).
  auto cw = std::make_shared<std::string>("none");
  sub->add_option("--class-weights", *cw, "none, or auto: weight the loss by N/(K*n_class) for unbalanced folders")
      ->capture_default_str()->check(CLI::IsMember({"none", "auto"}))
      ->each([&t, cw](const std::string& v) { t.class_weights = v == "auto"; });
  sub->add_option("--device", t.device, "auto (CUDA when present), cpu or cuda")
      ->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  add_engine_flags(sub, t.engine, t.precision);
  sub->add_option("--dist-timeout", t.dist_timeout_s,
                  "Distributed runs (started by torchrun or srun): seconds the rendezvous and each collective wait "
                  "for the other ranks before the job stops with an error naming the missing rank")
      ->capture_default_str()->check(CLI::Range(1, 86400));
}

void join_distributed_world(const TrainOptions& t) {
  join_world_from_environment(t.device, std::chrono::seconds(t.dist_timeout_s));
}

namespace {

std::string default_run_dir() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "runs/%Y%m%d-%H%M%S", &tm);
  return buf;
}

int run_train(TrainRunOptions opt, const std::string& resume_dir, const CLI::App* sub) {
  join_distributed_world(opt.train);
  if (!resume_dir.empty()) {
    ResumeRequest req;
    req.values = opt;
    for (const CLI::Option* o : sub->get_options())
      if (o->count() > 0 && o->get_name() != "--resume") req.given.push_back(o->get_name());
    resume_training(resume_dir, std::cout, req);
    return 0;
  }
  if (opt.data_dir.empty()) throw Error("give a data folder (one sub-folder per class), or --resume RUN_DIR");
  if (opt.backbone_path.empty()) throw Error("--backbone is required: a TorchScript file from scripts/export_backbone.py");
  if (opt.out_dir.empty()) opt.out_dir = default_run_dir();
  run_training(opt, std::cout);
  return 0;
}

}  // namespace

void setup_train(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<TrainRunOptions>();
  CLI::App* sub = app.add_subcommand(
      "train", "Train a classifier head on a frozen backbone from DATA_DIR (one sub-folder per class) and write a "
               "run folder with model.pt, config.json, history.csv, metrics.json, skipped_files.tsv and splits.csv.");
  sub->add_option("data_dir", opt->data_dir, "Folder with one sub-folder of images per class (a folder holding "
                                             "PetImages/ or flower_photos/ also works)");
  add_label_flags(sub, opt->labels);
  sub->add_option("--backbone", opt->backbone_path,
                  "TorchScript backbone file made by scripts/export_backbone.py (required)");
  auto resume = std::make_shared<std::string>();
  sub->add_option("--resume", *resume,
                  "Continue RUN_DIR with the settings in its config.json: an interrupted run from its checkpoint.pt "
                  "(the same result as an uninterrupted run; also an interrupted `tlc finetune`); a finished run "
                  "with a larger --epochs or --fine-tune-epochs goes on from its model.pt (epochs numbered on, "
                  "fresh optimizer state). With --resume only --epochs, --fine-tune-epochs, --device, --threads, "
                  "--memory-budget-mb, the cache flags and the output flags may differ from the run's settings")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--out", opt->out_dir, "Run folder to write (default: runs/YYYYmmdd-HHMMSS)");
  sub->add_option("--val-split", opt->val_split, "Fraction of each class held out for validation")
      ->capture_default_str()->check(CLI::Range(0.0, 0.9));
  sub->add_option("--test-split", opt->test_split, "Fraction of each class held out for the final test")
      ->capture_default_str()->check(CLI::Range(0.0, 0.9));
  sub->add_option("--val-dir", opt->val_dir, "Separate validation folder (same class sub-folders) instead of a split")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--test-dir", opt->test_dir, "Separate test folder (same class sub-folders) instead of a split")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--seed", opt->train.seed, "Seed for the split, head initialisation and shuffling")->capture_default_str();
  sub->add_option("--image-size", opt->image_size, "Images are resized to SIZE x SIZE")
      ->capture_default_str()->check(CLI::Range(8, 4096));
  sub->add_option("--normalize", opt->normalize,
                  "Pixel normalization: auto (what the backbone file says, else minus1to1), minus1to1 (x/127.5-1), "
                  "imagenet (torchvision mean/std), caffe (BGR minus ImageNet mean)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "minus1to1", "imagenet", "caffe"}));
  sub->add_option("--resize", opt->resize,
                  "How images of another aspect ratio become SIZE x SIZE: stretch (aspect ratio not kept), crop (the "
                  "centred square), pad (the whole image, centred on black); recorded in model.pt for predict/evaluate")
      ->capture_default_str()->check(CLI::IsMember({"stretch", "crop", "pad"}));
  sub->add_option("--epochs", opt->train.epochs, "Epochs of head training (backbone frozen)")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  sub->add_option("--lr", opt->train.optimizer.lr, "Learning rate of the head")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--hidden", opt->train.hidden, "Width of a hidden Dense+ReLU layer in the head (0: none)")
      ->capture_default_str()->check(CLI::Range(0, 1 << 20));
  sub->add_option("--dropout", opt->train.dropout, "Dropout rate before the last Dense layer (0: none)")
      ->capture_default_str()->check(CLI::Range(0.0, 0.99));
  sub->add_option("--fine-tune-layers", opt->train.fine_tune_layers,
                  "After the head epochs, unfreeze the last N backbone layers with parameters (VGG16: 3 = block 5; "
                  "`tlc inspect` lists them; BatchNorm stays in inference mode)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--fine-tune-blocks", opt->train.fine_tune_blocks,
                  "Instead of --fine-tune-layers (not with it): unfreeze the last N blocks (ResNet: 1 = layer4; "
                  "`tlc inspect` lists the blocks), i.e. the layers with parameters inside them")
      ->check(CLI::NonNegativeNumber)->excludes("--fine-tune-layers");
  sub->add_option("--fine-tune-epochs", opt->train.fine_tune_epochs, "Epochs of fine-tuning (the epoch count goes on)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--fine-tune-lr", opt->train.fine_tune_lr, "Learning rate while fine-tuning (unfrozen layers and head)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  add_training_flags(sub, opt->train);
  add_decode_flag(sub, opt->train.decode);  // the first pass decodes (finetune decodes on the CPU: no first pass)
  sub->add_option("--threads", opt->threads, "Decoding threads (0: all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--max-pixels", opt->max_pixels, "Refuse images with more pixels than this (decompression bombs)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--memory-budget-mb", opt->memory_budget_mb,
                  "Keep decoded images in RAM up to this many MiB; beyond it they are decoded again each epoch")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_flag_function("--quiet", [opt](int64_t) { opt->verbosity = 0; },
                         "Print only the results (test accuracy, where the model went) and errors");
  sub->add_flag_function("--verbose", [opt](int64_t) { opt->verbosity = 2; },
                         "Also list every skipped file and decoder warning on the terminal");
  sub->add_flag_function("--no-progress", [opt](int64_t) { opt->progress = false; },
                         "No progress bars or periodic progress lines");
  sub->add_flag("--strict", opt->strict, "Stop with an error on the first undecodable image instead of skipping it");
  sub->add_flag("--overwrite", opt->overwrite,
                "Replace the finished (or interrupted) run in --out; without it tlc refuses to overwrite a run");
  sub->callback([opt, resume, exit_code, sub] { *exit_code = run_train(*opt, *resume, sub); });
}

}  // namespace tlc::cli
