#pragma once
// Whole jobs as library calls, so that everything the CLI does is available from C++: a training run that
// writes a run folder, prediction of files, and the benchmark.
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "tlc/labels.h"
#include "tlc/metrics.h"
#include "tlc/model_file.h"
#include "tlc/predict.h"
#include "tlc/trainer.h"

namespace tlc {

struct TrainRunOptions {
  std::string data_dir;
  std::string val_dir, test_dir;  // optional: separate folders instead of splitting data_dir
  std::string backbone_path;
  std::string out_dir;            // the run folder
  double val_split = 0.1, test_split = 0.1;
  int64_t image_size = 160;
  std::string normalize = "auto";  // auto: what the backbone file says, else minus1to1
  std::string resize = "stretch";  // stretch | crop | pad (see ResizeMode); recorded in model.pt
  LabelSource labels;              // --labels / --label-regex instead of class sub-folders (tlc/labels.h)
  TrainOptions train;
  bool strict = false;
  int threads = 0;                 // decoding threads, 0 = all cores
  int64_t max_pixels = 100'000'000;
  int64_t memory_budget_mb = 4096;  // decoded images kept in RAM up to this size
  int verbosity = 1;                // 0: quiet (results only), 1: normal, 2: verbose (every skipped file)
  bool progress = true;             // progress bars on a terminal, periodic lines elsewhere
  bool overwrite = false;           // replace a finished (or interrupted) run in out_dir instead of refusing
};

struct TrainRunResult {
  std::string run_dir, model_path;
  std::vector<std::string> classes;
  EvalStats initial_val, final_val, test;
  std::vector<EpochStats> history;
  int64_t broken = 0, ignored = 0;
};

// Lists, splits, decodes, trains, evaluates and writes the run folder: model.pt, config.json, history.csv,
// metrics.json, skipped_files.tsv, splits.csv. Progress goes to `log`. Throws tlc::Error for bad input; a
// run folder it created is removed again on an error (see RunFolderGuard). Paths are stored absolute, so
// the run folder works from any working directory. config.json is written before the long work and
// RUN_DIR/checkpoint.pt after every epoch and on interruption (tlc::Interrupted, whose message ends with the
// command that continues the run).
TrainRunResult run_training(const TrainRunOptions& opt, std::ostream& log);

// What `tlc train --resume RUN` was given besides the run folder: the flags as typed ("--epochs", and
// "data_dir" for the positional folder) and the values they set.
struct ResumeRequest {
  std::vector<std::string> given;
  TrainRunOptions values;
};

// Continues a run folder with the settings in its config.json:
//  - interrupted (checkpoint.pt): from the checkpoint, to the same result as an uninterrupted run;
//  - stopped before its first checkpoint (config.json only): again from the beginning;
//  - finished (model.pt), with a larger --epochs (or --fine-tune-epochs): its last phase goes on from its
//    model.pt for the added epochs, numbered on (Keras' initial_epoch), with a fresh optimizer state;
//  - an interrupted `tlc finetune` (finetune.json): as run_finetune with resume.
// Of the flags in `req`, --epochs, --fine-tune-epochs, --device, --threads, --memory-budget-mb, the cache
// flags and the output flags apply; any other that differs from the run's config throws tlc::Error listing
// them.
TrainRunResult resume_training(const std::string& run_dir, std::ostream& log, const ResumeRequest& req = {});

struct FinetuneRunOptions {
  std::string run_dir;          // a run folder written by run_training (or an earlier run_finetune)
  std::string out_dir;          // where to write; empty: update run_dir in place (model.pt replaced atomically)
  std::string data_dir;         // empty: the run's own data folder (config.json), with the same split
  int fine_tune_layers = 0;
  int fine_tune_blocks = 0;     // or the last N blocks (decides when > 0; TrainOptions::fine_tune_blocks)
  int fine_tune_epochs = 10;
  double fine_tune_lr = 1e-5;
  TrainOptions train;           // batch size, optimizer name, caches, controls, device
  int threads = 0;
  bool strict = false;
  int64_t memory_budget_mb = 4096;
  int verbosity = 1;
  bool progress = true;
  // Continue the interrupted fine-tuning in run_dir (its finetune.json and checkpoint.pt) with the settings
  // it was started with; threads, verbosity and progress come from these options.
  bool resume = false;
};

// Continues a saved run with a fine-tuning phase; the epoch count goes on from the run's history. The job
// checkpoints like run_training: OUT/checkpoint.pt after every epoch and on interruption, with its settings
// in OUT/finetune.json (both removed when it finishes); model.pt is replaced only at the end.
TrainRunResult run_finetune(const FinetuneRunOptions& opt, std::ostream& log);


struct EvaluateOptions {
  std::string model_path;
  std::string data_dir;  // empty: the test split listed in splits.csv beside the model
  std::string out_dir;   // where confusion.png and misclassified.csv go (default: beside the model)
  int top_k = 3;
  int64_t batch_size = 32;
  int threads = 0;
  int64_t max_pixels = 100'000'000;  // larger images are skipped with the reason (decompression bombs)
  std::string device = "auto";  // auto (CUDA when present) | cpu | cuda
  std::string resize;           // empty: the model's own (see ResizeMode); else stretch | crop | pad
  LabelSource labels;           // label data_dir by a CSV or file names instead of class sub-folders
  std::string show;             // when set: a contact sheet PNG of the highest-loss images (plot_top_losses)
  int show_count = 12;          // how many images that sheet shows
  std::string engine = "auto", precision = "auto";  // of the backbone pass (tlc/engine.h)
  std::string calibration_dir;  // --precision int8: images to calibrate on (default: the run's training images)
  int tta = 0;                  // test-time augmentation: views per image blended with the plain prediction
  std::string tta_augment;      // their transforms (default: the model's training augmentation, else flip)
};

struct Misclassified {
  std::string path, true_label, predicted_label;
  double probability = 0;  // of the predicted class
};

struct EvaluateResult {
  std::vector<std::string> classes;
  Evaluation eval;
  std::vector<Misclassified> misclassified;
  std::vector<SkippedFile> skipped;
  std::string source;  // what was evaluated
  std::string confusion_png, misclassified_csv;
  std::string worst_png;  // the --show sheet, when asked for
  std::string engine;     // the engine line: what ran the backbone, and why
  struct Tta {
    int views = 0;
    std::string augment;
    Evaluation plain;  // the same images without TTA
  };
  std::optional<Tta> tta;
  // --precision int8: the same images in fp32, for the accuracy int8 costs.
  struct Int8Cost {
    Evaluation fp32;
    std::string fp32_engine;
    double agreement = 0;             // the share of images whose top class is the same
    double max_probability_diff = 0;  // the largest difference of any class probability
  };
  std::optional<Int8Cost> int8_cost;
};

// Scores a saved model on a folder (or its run's test split): metrics, confusion.png, misclassified.csv.
EvaluateResult run_evaluate(const EvaluateOptions& opt);

// --precision int8 on a model (after set_engine): calibrates its engine on the images of `calibration_dir`, or,
// without one, on the training images of the run `model_arg` names (config.json: its data folder and split).
// Throws tlc::Error with the way out when there are none (a bare model file, a data folder that is gone), and
// when --calibration is given for another precision. Nothing to do otherwise.
void calibrate_model(ModelFile& model, const std::string& model_arg, const std::string& calibration_dir, int threads);

struct BenchOptions {
  std::string backbone_path;  // empty: skip the backbone figure
  std::string images_dir;     // empty: synthetic 500x375 JPEGs made in memory
  int64_t batch_size = 32;
  int64_t image_size = 160;
  int64_t images = 256;       // decode+resize sample size
  int iterations = 5;
  int threads = 0;
  std::string device = "auto";  // auto (CUDA when present) | cpu | cuda, as the other commands
  std::string precision = "auto";  // of the frozen backbone (tlc/engine.h): auto | fp32 | tf32 | bf16
  std::string engine = "auto";     // auto | torchscript | openvino
  // The backbone figure's peers: the same file run by PyTorch and by OpenVINO's defaults in a child Python
  // (tlc/subprocess.h project_python), as figures of their own with tlc's ratio to each. On CPU only.
  bool peers = true;
  std::string decode = "auto";     // auto: also the GPU decoder's figures when it is available | cpu | gpu
};

struct BenchFigure {
  std::string name, unit, detail;
  double value = 0;
};

std::vector<BenchFigure> run_bench(const BenchOptions& opt, std::ostream& log);

}  // namespace tlc
