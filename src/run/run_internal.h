#pragma once
// Pieces shared by the run functions (train, resume, finetune): data preparation and reports, the run
// folder's output files, the configuration. Internal to src/run.
#include <nlohmann/json.hpp>

#include <memory>
#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

#include "tlc/progress.h"
#include "tlc/run.h"

namespace tlc::detail {

using json = nlohmann::json;

json num(double v);
std::string fmt(double v, int prec = 4);
std::string join(const std::vector<std::string>& v, const std::string& sep);
std::string path_in(const std::string& dir, const char* name);
std::string dump_json(const json& j);  // pretty, invalid UTF-8 replaced, with a final newline

// A stream that drops everything (--quiet).
struct NullBuffer : std::streambuf {
  int overflow(int c) override { return c; }
};

// Routes the trainer's progress reports to one Progress display at a time.
class ProgressSink {
 public:
  ProgressSink(std::ostream& out, bool enabled);
  ~ProgressSink() { close(); }
  void operator()(const std::string& label, int64_t done, int64_t total);
  void close();

 private:
  std::ostream& out_;
  bool enabled_, tty_;
  std::string label_;
  std::unique_ptr<Progress> bar_;
};

// The images of a run: listed, split and decoded, with everything that was skipped.
struct PreparedData {
  ImageFolder folder, val_folder, test_folder;
  ImageSet train, val, test;
  ScanReport report;
};

struct DataSpec {
  std::string data_dir, val_dir, test_dir;
  double val_split = 0.1, test_split = 0.1;
  uint64_t seed = 42;
  int64_t image_size = 160;
  int64_t max_pixels = 100'000'000;
  int64_t memory_budget_mb = 4096;
  int threads = 0;
  bool strict = false;
  ResizeMode resize = ResizeMode::stretch;
  LabelSource labels;  // when active, labels come from a CSV or file names instead of class folders
};

ImageFolder list_data(const DataSpec& d);
DataSpec data_spec_of(const TrainRunOptions& opt);  // the data part of a train run's options
// The train/val/test split of a listed folder (its seed, fractions, and --val/--test folders).
Split split_of(const DataSpec& d, const ImageFolder& folder);
// --precision int8: calibrates the classifier's engine on the training split's images (tlc/calibration.h)
// before its first frozen pass; nothing for other precisions.
void calibrate_on_training_images(TransferClassifier& clf, const DataSpec& d, const ImageFolder& folder);
// With `first_pass`, the training and validation images go through its feature sinks while they are
// decoded, so that the head phase's feature extraction overlaps the decoding.
PreparedData prepare_data(const DataSpec& d, ImageFolder folder, TransferClassifier* first_pass = nullptr);
// Prints what was skipped and the split; writes skipped_files.tsv and splits.csv into out_dir. Stops (after
// writing skipped_files.tsv) when a class has no usable training image left, or with `strict` on any
// undecodable file, counting every split's (tlc/data_checks.h).
void report_data(const PreparedData& p, const std::string& out_dir, uint64_t seed, std::ostream& log, int verbosity,
                 bool strict);
// --keep best and --patience watch the validation loss: without a validation set, say that they do nothing.
void warn_without_validation(const PreparedData& p, const TrainOptions& t, std::ostream& log);

void log_epoch(std::ostream& log, const EpochStats& s, int last_epoch);
std::string history_csv(const std::vector<EpochStats>& history);
std::vector<EpochStats> read_history(const std::string& path);  // empty when the file is missing
// Scores, saves the model and writes history/metrics; shared by train and finetune.
void finish_run(TransferClassifier& clf, const PreparedData& p, const std::string& out_dir, TrainRunResult& res,
                std::ostream& log);

json train_options_json(const TrainOptions& t);
TrainOptions train_options_from_json(const json& j);
json read_json_file(const std::string& path);  // throws tlc::Error naming the file
// The settings of a run folder's config.json as TrainRunOptions, paths resolved (see resolve_recorded_path).
TrainRunOptions options_from_config(const json& c, const std::string& run_dir);
// The run's stored options with what `req` may change applied; throws tlc::Error listing the flags in
// `req` that differ from the stored settings and may not change.
TrainRunOptions apply_resume_request(const TrainRunOptions& stored, const ResumeRequest& req);

}  // namespace tlc::detail
