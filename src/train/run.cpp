// Training runs: the pipeline from a folder of images to a run folder with a model file, and the
// continuation of a run folder with a fine-tuning phase.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "tlc/data_checks.h"
#include "tlc/error.h"
#include "tlc/formats.h"
#include "tlc/labels.h"
#include "tlc/plots.h"
#include "tlc/preprocess.h"
#include "tlc/progress.h"
#include "tlc/run.h"
#include "tlc/text.h"
#include "tlc/util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace tlc {
namespace {

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string fmt(double v, int prec = 4) {
  if (!std::isfinite(v)) return "n/a";
  std::ostringstream o;
  o << std::fixed << std::setprecision(prec) << v;
  return o.str();
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::string counts_text(const std::vector<ImageItem>& items, const std::vector<std::string>& classes) {
  auto c = count_per_class(items, static_cast<int64_t>(classes.size()));
  std::string s = std::to_string(items.size()) + " (";
  for (size_t i = 0; i < classes.size(); ++i) s += (i ? ", " : "") + classes[i] + " " + std::to_string(c[i]);
  return s + ")";
}

std::string path_in(const std::string& dir, const char* name) { return (fs::path(dir) / name).string(); }

// A stream that drops everything (--quiet).
struct NullBuffer : std::streambuf {
  int overflow(int c) override { return c; }
};

// Routes the trainer's progress reports to one Progress display at a time.
class ProgressSink {
 public:
  ProgressSink(std::ostream& out, bool enabled) : out_(out), enabled_(enabled), tty_(stdout_is_terminal()) {}
  ~ProgressSink() { close(); }
  void operator()(const std::string& label, int64_t done, int64_t total) {
    if (!enabled_) return;
    if (!bar_ || label != label_) {
      close();
      label_ = label;
      bar_ = std::make_unique<Progress>(out_, tty_, label, total);
    }
    bar_->update(done);
    if (done >= total) close();
  }
  void close() {
    if (bar_) bar_->finish();
    bar_.reset();
  }

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

ImageFolder list_data(const DataSpec& d) {
  if (!d.labels.csv.empty() && (!d.val_dir.empty() || !d.test_dir.empty()))
    throw Error("--labels lists the images of the data folder only; with it, hold out images with --val-split/"
                "--test-split instead of --val-dir/--test-dir (or label every folder with --label-regex)");
  return list_images(d.data_dir, d.labels);
}

// With `first_pass`, the training and validation images go through its feature sinks while they are
// decoded, so that the head phase's feature extraction overlaps the decoding.
PreparedData prepare_data(const DataSpec& d, ImageFolder folder, TransferClassifier* first_pass = nullptr) {
  PreparedData p;
  p.folder = std::move(folder);
  const bool own_val = !d.val_dir.empty(), own_test = !d.test_dir.empty();
  if (own_val) p.val_folder = list_images_with_classes(d.val_dir, d.labels, p.folder.classes);
  if (own_test) p.test_folder = list_images_with_classes(d.test_dir, d.labels, p.folder.classes);
  Split split = split_stratified(p.folder.items, static_cast<int64_t>(p.folder.classes.size()),
                                 own_val ? 0.0 : d.val_split, own_test ? 0.0 : d.test_split, d.seed, p.folder.classes);
  if (own_val) split.val = p.val_folder.items;
  if (own_test) split.test = p.test_folder.items;
  DecodeOptions dopt;
  dopt.size = static_cast<int>(d.image_size);
  dopt.max_pixels = d.max_pixels;
  dopt.resize = d.resize;
  int64_t budget = d.memory_budget_mb * 1024 * 1024;
  auto scan = [&](const std::vector<ImageItem>& items, const char* role) {
    const ChunkSink sink = first_pass && role ? first_pass->first_pass_sink(role) : ChunkSink{};
    // --strict is judged by check_training_data once all splits are decoded, so that it counts every file.
    ImageSet s = ImageSet::scan(items, dopt, d.threads, budget, false, p.report, sink);
    if (s.in_memory()) budget -= s.size() * dopt.size * dopt.size * 3;
    return s;
  };
  p.train = scan(split.train, "train");
  p.val = scan(split.val, "val");
  p.test = scan(split.test, nullptr);
  return p;
}

void report_data(const PreparedData& p, const std::string& out_dir, uint64_t seed, std::ostream& log, int verbosity,
                 bool strict) {
  std::ostringstream tsv;
  tsv << "path\treason\n";
  for (const auto& f : p.report.broken) tsv << f.path << "\tundecodable: " << f.reason << "\n";
  for (const auto* fl : {&p.folder, &p.val_folder, &p.test_folder})
    for (const auto& f : fl->ignored) tsv << f.path << "\tignored: " << f.reason << "\n";
  for (const auto& f : p.report.warnings) tsv << f.path << "\tused, decoder warning: " << f.reason << "\n";
  write_file_atomic(path_in(out_dir, "skipped_files.tsv"), tsv.str());
  if (!p.report.broken.empty()) {
    log << "  skipped " << p.report.broken.size() << " undecodable file(s):\n";
    const size_t shown = verbosity >= 2 ? p.report.broken.size() : 10;
    for (size_t i = 0; i < p.report.broken.size() && i < shown; ++i)
      log << "    " << p.report.broken[i].path << ": " << p.report.broken[i].reason << "\n";
    if (p.report.broken.size() > shown) log << "    ... and " << p.report.broken.size() - 10 << " more\n";
    log << "    (all listed in " << path_in(out_dir, "skipped_files.tsv") << ")\n";
  }
  const size_t ignored = p.folder.ignored.size() + p.val_folder.ignored.size() + p.test_folder.ignored.size();
  if (ignored > 0) log << "  ignored " << ignored << " non-image or stray file(s) (listed in skipped_files.tsv)\n";
  if (const std::string formats = unsupported_formats_note(p.folder.ignored); !formats.empty()) log << "  " << formats << "\n";
  for (const auto* fl : {&p.folder, &p.val_folder, &p.test_folder}) log << dropped_class_notes(fl->ignored);
  check_training_data({&p.folder, &p.val_folder, &p.test_folder}, p.train.items(), p.report.broken, strict,
                      path_in(out_dir, "skipped_files.tsv"));
  if (!p.report.warnings.empty()) {
    log << "  " << p.report.warnings.size() << " image(s) decoded with warnings and used (listed in skipped_files.tsv)\n";
    if (verbosity >= 2)
      for (const auto& w : p.report.warnings) log << "    " << w.path << ": " << w.reason << "\n";
  }
  const auto& cl = p.folder.classes;
  // Very unbalanced classes: say so, and name the remedy.
  auto counts = count_per_class(p.train.items(), static_cast<int64_t>(cl.size()));
  const int64_t most = *std::max_element(counts.begin(), counts.end()), least = *std::min_element(counts.begin(), counts.end());
  if (least > 0 && most >= 10 * least)
    log << "  warning: classes are very unbalanced (" << most << " vs " << least
        << " training images); consider --class-weights auto\n";
  log << "  split (seed " << seed << "): train " << counts_text(p.train.items(), cl) << "\n"
      << "                 val " << counts_text(p.val.items(), cl) << "\n"
      << "                 test " << counts_text(p.test.items(), cl) << "\n";
  // Which file went where, so that evaluation and predictions can be checked against the same split later.
  std::ostringstream sp;
  sp << "split,label,path\n";
  for (const auto& [name, set] : {std::pair<const char*, const ImageSet*>{"train", &p.train}, {"val", &p.val}, {"test", &p.test}})
    for (const auto& it : set->items()) sp << name << "," << cl[it.label] << "," << it.path << "\n";
  write_file_atomic(path_in(out_dir, "splits.csv"), sp.str());
}


void log_epoch(std::ostream& log, const EpochStats& s, int last_epoch) {
  log << "epoch " << s.epoch << "/" << last_epoch << (s.phase == "head" ? "" : " [fine-tune]") << ": loss "
      << fmt(s.loss) << ", acc " << fmt(s.acc) << ", val_loss " << fmt(s.val_loss) << ", val_acc " << fmt(s.val_acc)
      << ", " << fmt(s.images_per_second, 1) << " img/s, " << fmt(s.seconds, 1) << " s"
      << (s.cache == "features" ? " (cached features)" : s.cache == "prefix" ? " (cached frozen prefix)" : "") << "\n"
      << std::flush;
}

std::string history_csv(const std::vector<EpochStats>& history) {
  std::ostringstream hist;
  hist << "epoch,phase,lr,loss,acc,val_loss,val_acc,seconds,images_per_second\n";
  for (const auto& s : history)
    hist << s.epoch << "," << s.phase << "," << s.lr << "," << fmt(s.loss, 6) << "," << fmt(s.acc, 6) << ","
         << fmt(s.val_loss, 6) << "," << fmt(s.val_acc, 6) << "," << fmt(s.seconds, 3) << ","
         << fmt(s.images_per_second, 1) << "\n";
  return hist.str();
}

// Reads history.csv back (for a continued run).
std::vector<EpochStats> read_history(const std::string& path) {
  std::vector<EpochStats> h;
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::stringstream ss(line);
    std::string cell;
    std::vector<std::string> c;
    while (std::getline(ss, cell, ',')) c.push_back(cell);
    if (c.size() < 9) continue;
    auto d = [](const std::string& v) { return v == "n/a" ? std::nan("") : std::stod(v); };
    EpochStats s;
    s.epoch = std::stoi(c[0]);
    s.phase = c[1];
    s.lr = d(c[2]);
    s.loss = d(c[3]);
    s.acc = d(c[4]);
    s.val_loss = d(c[5]);
    s.val_acc = d(c[6]);
    s.seconds = d(c[7]);
    s.images_per_second = d(c[8]);
    h.push_back(s);
  }
  return h;
}

json metrics_json(const TrainRunResult& r, const PreparedData& p) {
  return {
      {"initial", {{"loss", num(r.initial_val.loss)}, {"acc", num(r.initial_val.acc)},
                   {"on", p.val.size() > 0 ? "val" : "train"}}},
      {"final_train", r.history.empty() ? json(nullptr)
                                        : json{{"loss", num(r.history.back().loss)}, {"acc", num(r.history.back().acc)}}},
      {"val", p.val.size() > 0 ? json{{"loss", num(r.final_val.loss)}, {"acc", num(r.final_val.acc)}, {"count", p.val.size()}}
                               : json(nullptr)},
      {"test", p.test.size() > 0 ? json{{"loss", num(r.test.loss)}, {"acc", num(r.test.acc)}, {"count", p.test.size()}}
                                 : json(nullptr)},
      {"epochs_run", r.history.size()},
      {"skipped_undecodable", r.broken},
      {"ignored_files", r.ignored},
  };
}

json train_options_json(const TrainOptions& t) {
  return {{"epochs", t.epochs},
          {"seed", t.seed},
          {"device", t.device},
          {"cache_dir", t.cache_dir},
          {"cache_memory_mb", t.cache_memory_mb},
          {"lr_step_epochs", t.lr_step_epochs},
          {"lr_gamma", t.lr_gamma},
          {"batch_size", t.batch_size},
          {"optimizer", t.optimizer.name},
          {"lr", t.optimizer.lr},
          {"momentum", t.optimizer.momentum},
          {"hidden", t.hidden},
          {"dropout", t.dropout},
          {"augment", t.augment},
          {"precision", t.precision},
          {"fine_tune_layers", t.fine_tune_layers},
          {"fine_tune_epochs", t.fine_tune_epochs},
          {"fine_tune_lr", t.fine_tune_lr},
          {"cache_features", t.cache_features},
          {"keep", t.keep},
          {"patience", t.patience},
          {"lr_schedule", t.lr_schedule},
          {"class_weights", t.class_weights}};
}

TrainOptions train_options_from_json(const json& j) {
  TrainOptions t;
  t.epochs = j.at("epochs");
  t.seed = j.at("seed");
  t.device = j.at("device");
  t.cache_dir = j.at("cache_dir");
  t.cache_memory_mb = j.at("cache_memory_mb");
  t.lr_step_epochs = j.at("lr_step_epochs");
  t.lr_gamma = j.at("lr_gamma");
  t.batch_size = j.at("batch_size");
  t.optimizer.name = j.at("optimizer");
  t.optimizer.lr = j.at("lr");
  t.optimizer.momentum = j.at("momentum");
  t.hidden = j.at("hidden");
  t.dropout = j.at("dropout");
  t.augment = j.at("augment");
  t.precision = j.value("precision", "auto");
  t.fine_tune_layers = j.at("fine_tune_layers");
  t.fine_tune_epochs = j.at("fine_tune_epochs");
  t.fine_tune_lr = j.at("fine_tune_lr");
  t.cache_features = j.at("cache_features");
  t.keep = j.at("keep");
  t.patience = j.at("patience");
  t.lr_schedule = j.at("lr_schedule");
  t.class_weights = j.at("class_weights");
  return t;
}

// Scores, saves the model and writes history/metrics; shared by train and finetune.
void finish_run(TransferClassifier& clf, const PreparedData& p, const std::string& out_dir, TrainRunResult& res,
                std::ostream& log) {
  if (p.val.size() > 0) res.final_val = clf.score(p.val);
  if (p.test.size() > 0) {
    res.test = clf.score(p.test);
    log << "test: loss " << fmt(res.test.loss) << ", acc " << fmt(res.test.acc) << " (" << res.test.count << " images)\n";
  }
  res.model_path = path_in(out_dir, "model.pt");
  clf.save(res.model_path);
  write_file_atomic(path_in(out_dir, "history.csv"), history_csv(res.history));
  if (!res.history.empty()) plot_curves(res.history, path_in(out_dir, "curves.png"));
  write_file_atomic(path_in(out_dir, "metrics.json"), metrics_json(res, p).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace

TrainRunResult run_training(const TrainRunOptions& opt, std::ostream& out) {
  TrainRunResult res;
  NullBuffer null_buf;
  std::ostream null_stream(&null_buf);
  std::ostream& log = opt.verbosity == 0 ? null_stream : out;  // --quiet: results only, on `out`
  // Everything that can be checked before the long work is checked first.
  if (opt.image_size < 8 || opt.image_size > 4096) throw Error("--image-size must be between 8 and 4096");
  if (opt.train.epochs < 0) throw Error("--epochs must be >= 0");
  DataSpec d{opt.data_dir, opt.val_dir, opt.test_dir, opt.val_split, opt.test_split, opt.train.seed, opt.image_size,
             opt.max_pixels, opt.memory_budget_mb, opt.threads, opt.strict, parse_resize_mode(opt.resize), opt.labels};
  ImageFolder folder = list_data(d);
  res.classes = folder.classes;
  Backbone backbone = Backbone::load(opt.backbone_path);
  const BackboneInfo bi = backbone.info();  // a copy: the backbone moves into the classifier below
  if (opt.train.fine_tune_layers > backbone.layers_with_parameters())
    backbone.unfreeze_last(opt.train.fine_tune_layers);  // throws the error that names the layer count

  Preprocess pre;
  pre.image_size = opt.image_size;
  pre.resize = d.resize;
  const NormalizeChoice norm = choose_normalize(opt.normalize, bi);
  pre.mode = norm.mode;
  if (!norm.warning.empty()) log << "warning: " << norm.warning << "\n";

  res.run_dir = opt.out_dir;
  fs::create_directories(opt.out_dir);
  TrainOptions topt = opt.train;
  topt.checkpoint = path_in(opt.out_dir, "checkpoint.pt");
  if (!topt.resume && fs::exists(topt.checkpoint))
    throw Error(opt.out_dir + " holds an interrupted run (checkpoint.pt); continue it with `tlc train --resume " +
                opt.out_dir + "`, or delete checkpoint.pt / choose another --out to start afresh");
  TransferClassifier clf(std::move(backbone), folder.classes, pre, topt);
  ProgressSink sink(out, opt.progress && opt.verbosity > 0);
  clf.set_progress([&sink](const std::string& l, int64_t d, int64_t n) { sink(l, d, n); });
  const auto& t = opt.train;
  log << "tlc train: " << folder.root << "\n";
  if (!folder.layout_note.empty()) log << "  layout: " << folder.layout_note << "\n";
  log << "  device: " << clf.device().str() << ", " << resolve_threads(opt.threads) << " decoding threads\n";
  log << "  backbone: " << bi.path << " (" << bi.arch << ", " << bi.weights << " weights, " << bi.output_channels
      << " channels, " << clf.backbone().parameter_count() << " parameters, frozen)\n";
  log << "  preprocessing: " << pre.image_size << "x" << pre.image_size << ", normalize " << to_string(pre.mode)
      << " (" << norm.origin << "), resize " << to_string(pre.resize) << (t.augment == "flip" ? ", random horizontal flips" : "") << "\n";
  log << "  head: GAP -> " << (t.hidden > 0 ? "Dense(" + std::to_string(t.hidden) + ", relu) -> " : "")
      << (t.dropout > 0 ? "Dropout(" + fmt(t.dropout, 2) + ") -> " : "") << "Dense(" << folder.classes.size() << "); "
      << t.optimizer.name << " lr " << t.optimizer.lr << ", " << count_noun(t.epochs, "epoch") << ", batch " << t.batch_size
      << ", seed " << t.seed << "\n";
  if (t.fine_tune_layers > 0 && t.fine_tune_epochs > 0)
    log << "  then fine-tuning: last " << t.fine_tune_layers << " layer(s) with parameters, "
        << count_noun(t.fine_tune_epochs, "epoch") << " at lr " << t.fine_tune_lr << "\n";
  log << "  classes (" << folder.classes.size() << "): " << join(folder.classes, ", ") << "\n";

  PreparedData p = prepare_data(d, std::move(folder), topt.resume ? nullptr : &clf);
  res.broken = static_cast<int64_t>(p.report.broken.size());
  res.ignored = static_cast<int64_t>(p.folder.ignored.size() + p.val_folder.ignored.size() + p.test_folder.ignored.size());
  report_data(p, opt.out_dir, t.seed, log, opt.verbosity, opt.strict);

  // The configuration is written before training, so that an interrupted run can be resumed from it.
  json config = {
      {"created", now_iso8601()},
      {"data_dir", p.folder.root},
      {"val_dir", opt.val_dir},
      {"test_dir", opt.test_dir},
      {"classes", p.folder.classes},
      {"class_folders_hex", hex_bytes(p.folder.class_folders)},  // the folder names' bytes (classes are UTF-8)
      {"counts", {{"train", p.train.size()}, {"val", p.val.size()}, {"test", p.test.size()}}},
      {"backbone", {{"path", bi.path}, {"arch", bi.arch}, {"weights", bi.weights}, {"output_channels", bi.output_channels}}},
      {"image_size", pre.image_size},
      {"normalize", to_string(pre.mode)},
      {"resize", to_string(pre.resize)},
      {"labels_csv", opt.labels.csv.empty() ? std::string() : fs::absolute(opt.labels.csv).string()},
      {"label_regex", opt.labels.regex},
      {"val_split", opt.val_dir.empty() ? opt.val_split : 0.0},
      {"test_split", opt.test_dir.empty() ? opt.test_split : 0.0},
      {"seed", t.seed},
      {"max_pixels", opt.max_pixels},
      {"training", train_options_json(t)},
      {"device", clf.device().str()},
      {"strict", opt.strict},
      {"backbone_path", opt.backbone_path},
      {"requested_normalize", opt.normalize},
      {"threads", opt.threads},
      {"memory_budget_mb", opt.memory_budget_mb},
  };
  if (!topt.resume) write_file_atomic(path_in(opt.out_dir, "config.json"), config.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");

  const std::string metrics_path = path_in(opt.out_dir, "metrics.json");
  if (topt.resume && fs::exists(metrics_path)) {
    json m = json::parse(std::ifstream(metrics_path));
    res.initial_val.loss = m["initial"].value("loss", std::nan(""));
    res.initial_val.acc = m["initial"].value("acc", std::nan(""));
    log << "resuming from " << topt.checkpoint << "\n";
  } else {
    res.initial_val = clf.score(p.val.size() > 0 ? p.val : p.train);
    log << "initial (" << (p.val.size() > 0 ? "val" : "train") << "): loss " << fmt(res.initial_val.loss) << ", acc "
        << fmt(res.initial_val.acc) << "\n" << std::flush;
    write_file_atomic(metrics_path, json{{"status", "running"},
                                         {"initial", {{"loss", num(res.initial_val.loss)}, {"acc", num(res.initial_val.acc)}}}}
                                            .dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }
  const int last = t.epochs + (t.fine_tune_layers > 0 ? t.fine_tune_epochs : 0);
  res.history = clf.fit(p.train, p.val.size() > 0 ? &p.val : nullptr, [&](const EpochStats& s) {
    sink.close();
    log_epoch(log, s, last);
  });
  finish_run(clf, p, opt.out_dir, res, out);
  fs::remove(topt.checkpoint);  // the run is complete: model.pt is the result
  out << "model saved to " << res.model_path << " (curves: " << path_in(opt.out_dir, "curves.png") << ")\n";
  return res;
}

TrainRunResult resume_training(const std::string& run_dir, std::ostream& log) {
  const std::string cfg_path = path_in(run_dir, "config.json");
  if (!fs::exists(cfg_path) || !fs::exists(path_in(run_dir, "checkpoint.pt")))
    throw Error(run_dir + " has no interrupted run to resume (it needs config.json and checkpoint.pt)");
  json c = json::parse(std::ifstream(cfg_path));
  TrainRunOptions o;
  o.data_dir = c.at("data_dir");
  o.val_dir = c.at("val_dir");
  o.test_dir = c.at("test_dir");
  o.backbone_path = c.at("backbone_path");
  o.out_dir = run_dir;
  o.val_split = c.at("val_split");
  o.test_split = c.at("test_split");
  o.image_size = c.at("image_size");
  o.normalize = c.at("requested_normalize");
  o.resize = c.value("resize", std::string("stretch"));
  o.labels = {c.value("labels_csv", std::string()), c.value("label_regex", std::string())};
  o.max_pixels = c.at("max_pixels");
  o.strict = c.at("strict");
  o.threads = c.at("threads");
  o.memory_budget_mb = c.at("memory_budget_mb");
  o.train = train_options_from_json(c.at("training"));
  o.train.resume = true;
  return run_training(o, log);
}

TrainRunResult run_finetune(const FinetuneRunOptions& opt, std::ostream& log) {
  TrainRunResult res;
  const std::string cfg_path = path_in(opt.run_dir, "config.json");
  const std::string model_path = path_in(opt.run_dir, "model.pt");
  if (!fs::exists(cfg_path) || !fs::exists(model_path))
    throw Error(opt.run_dir + " is not a tlc run folder (it needs config.json and model.pt from `tlc train`)");
  json cfg;
  try {
    cfg = json::parse(std::ifstream(cfg_path));
  } catch (const std::exception& e) {
    throw Error(cfg_path + " cannot be read as JSON (" + e.what() + ")");
  }
  if (opt.fine_tune_layers < 1) throw Error("--fine-tune-layers must be >= 1 (how many layers to unfreeze)");
  TrainOptions t = opt.train;
  t.seed = cfg.value("seed", uint64_t{42});
  t.fine_tune_layers = opt.fine_tune_layers;
  t.fine_tune_epochs = opt.fine_tune_epochs;
  t.fine_tune_lr = opt.fine_tune_lr;
  if (cfg.contains("training")) t.dropout = cfg["training"].value("dropout", 0.0);
  TransferClassifier clf = TransferClassifier::load(model_path, t);
  ProgressSink sink(log, opt.progress);
  clf.set_progress([&sink](const std::string& l, int64_t d, int64_t n) { sink(l, d, n); });
  if (opt.fine_tune_layers > clf.backbone().layers_with_parameters()) clf.backbone().unfreeze_last(opt.fine_tune_layers);

  DataSpec d;
  d.data_dir = opt.data_dir.empty() ? cfg.value("data_dir", std::string()) : opt.data_dir;
  d.val_dir = cfg.value("val_dir", std::string());
  d.test_dir = cfg.value("test_dir", std::string());
  d.val_split = cfg.value("val_split", 0.1);
  d.test_split = cfg.value("test_split", 0.1);
  d.seed = t.seed;
  d.image_size = clf.preprocess().image_size;
  d.resize = clf.preprocess().resize;
  d.labels = {cfg.value("labels_csv", std::string()), cfg.value("label_regex", std::string())};
  d.max_pixels = cfg.value("max_pixels", int64_t{100'000'000});
  d.memory_budget_mb = opt.memory_budget_mb;
  d.threads = opt.threads;
  d.strict = opt.strict;
  ImageFolder folder = list_data(d);
  if (folder.classes != clf.classes())
    throw Error("the data folder " + folder.root + " has classes [" + join(folder.classes, ", ") + "] but model " +
                model_path + " was trained on [" + join(clf.classes(), ", ") + "]; fine-tune with the same class folders");
  const std::string out = opt.out_dir.empty() ? opt.run_dir : opt.out_dir;
  fs::create_directories(out);
  res.run_dir = out;
  res.classes = folder.classes;
  log << "tlc finetune: " << opt.run_dir << " on " << folder.root << "\n"
      << "  device: " << clf.device().str() << "\n"
      << "  fine-tuning the last " << t.fine_tune_layers << " of " << clf.backbone().layers_with_parameters()
      << " backbone layers with parameters, " << count_noun(t.fine_tune_epochs, "epoch") << ", " << t.optimizer.name << " lr "
      << t.fine_tune_lr << ", batch " << t.batch_size << "\n";
  PreparedData p = prepare_data(d, std::move(folder));  // no head phase here: nothing to stream
  res.broken = static_cast<int64_t>(p.report.broken.size());
  res.ignored = static_cast<int64_t>(p.folder.ignored.size());
  report_data(p, out, t.seed, log, 1, opt.strict);
  std::vector<EpochStats> before = read_history(path_in(opt.run_dir, "history.csv"));
  const int first = before.empty() ? 1 : before.back().epoch + 1;
  res.initial_val = clf.score(p.val.size() > 0 ? p.val : p.train);
  log << "before fine-tuning (" << (p.val.size() > 0 ? "val" : "train") << "): loss " << fmt(res.initial_val.loss)
      << ", acc " << fmt(res.initial_val.acc) << "\n";
  auto more = clf.fine_tune(p.train, p.val.size() > 0 ? &p.val : nullptr,
                            [&](const EpochStats& s) {
                              sink.close();
                              log_epoch(log, s, first + t.fine_tune_epochs - 1);
                            },
                            first);
  res.history = before;
  res.history.insert(res.history.end(), more.begin(), more.end());
  finish_run(clf, p, out, res, log);
  cfg["finetune"] = {{"fine_tune_layers", t.fine_tune_layers}, {"fine_tune_epochs", t.fine_tune_epochs},
                     {"fine_tune_lr", t.fine_tune_lr}, {"from", opt.run_dir}, {"created", now_iso8601()}};
  write_file_atomic(path_in(out, "config.json"), cfg.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  log << "model saved to " << res.model_path << "\n";
  return res;
}

}  // namespace tlc
