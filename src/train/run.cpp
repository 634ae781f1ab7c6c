// A training run: the pipeline from a folder of images to a run folder with a model file.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "tlc/error.h"
#include "tlc/run.h"
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

ImageSet scan_split(const std::string& name, const std::vector<ImageItem>& items, const DecodeOptions& dopt,
                    const TrainRunOptions& opt, int64_t& budget, ScanReport& report) {
  ImageSet s = ImageSet::scan(items, dopt, opt.threads, budget, opt.strict, report);
  if (s.in_memory()) budget -= s.size() * dopt.size * dopt.size * 3;
  (void)name;
  return s;
}

}  // namespace

TrainRunResult run_training(const TrainRunOptions& opt, std::ostream& log) {
  TrainRunResult res;
  // Everything that can be checked before the long work is checked first.
  if (opt.image_size < 8 || opt.image_size > 4096) throw Error("--image-size must be between 8 and 4096");
  if (opt.train.epochs < 0) throw Error("--epochs must be >= 0");
  ImageFolder folder = list_image_folder(opt.data_dir);
  res.classes = folder.classes;
  Backbone backbone = Backbone::load(opt.backbone_path);
  const BackboneInfo bi = backbone.info();  // a copy: the backbone moves into the classifier below

  Preprocess pre;
  pre.image_size = opt.image_size;
  std::string norm_origin;
  if (opt.normalize == "auto") {
    pre.mode = bi.normalize.empty() ? NormalizeMode::minus1to1 : parse_normalize_mode(bi.normalize);
    norm_origin = bi.normalize.empty() ? "default; the backbone file does not say" : "from the backbone file";
  } else {
    pre.mode = parse_normalize_mode(opt.normalize);
    norm_origin = "from --normalize";
    if (!bi.normalize.empty() && bi.normalize != opt.normalize)
      log << "warning: the backbone expects " << bi.normalize << " normalization but --normalize " << opt.normalize
          << " was given\n";
  }

  Split split;
  ImageFolder val_folder, test_folder;
  const bool own_val = !opt.val_dir.empty(), own_test = !opt.test_dir.empty();
  if (own_val) val_folder = list_image_folder_with_classes(opt.val_dir, folder.classes);
  if (own_test) test_folder = list_image_folder_with_classes(opt.test_dir, folder.classes);
  split = split_stratified(folder.items, static_cast<int64_t>(folder.classes.size()), own_val ? 0.0 : opt.val_split,
                           own_test ? 0.0 : opt.test_split, opt.train.seed, folder.classes);
  if (own_val) split.val = val_folder.items;
  if (own_test) split.test = test_folder.items;

  res.run_dir = opt.out_dir;
  fs::create_directories(opt.out_dir);
  res.model_path = (fs::path(opt.out_dir) / "model.pt").string();

  TransferClassifier clf(std::move(backbone), folder.classes, pre, opt.train);
  log << "tlc train: " << folder.root << "\n";
  if (!folder.layout_note.empty()) log << "  layout: " << folder.layout_note << "\n";
  log << "  device: " << clf.device().str() << ", " << resolve_threads(opt.threads) << " decoding threads\n";
  log << "  backbone: " << bi.path << " (" << bi.arch << ", " << bi.weights << " weights, " << bi.output_channels
      << " channels, " << clf.backbone().parameter_count() << " parameters, frozen)\n";
  log << "  preprocessing: " << pre.image_size << "x" << pre.image_size << ", normalize " << to_string(pre.mode)
      << " (" << norm_origin << ")\n";
  log << "  head: GAP -> " << (opt.train.hidden > 0 ? "Dense(" + std::to_string(opt.train.hidden) + ", relu) -> " : "")
      << (opt.train.dropout > 0 ? "Dropout(" + fmt(opt.train.dropout, 2) + ") -> " : "") << "Dense("
      << folder.classes.size() << "); " << opt.train.optimizer.name << " lr " << opt.train.optimizer.lr << ", "
      << opt.train.epochs << " epochs, batch " << opt.train.batch_size << ", seed " << opt.train.seed << "\n";
  log << "  classes (" << folder.classes.size() << "): " << join(folder.classes, ", ") << "\n";

  DecodeOptions dopt;
  dopt.size = static_cast<int>(opt.image_size);
  dopt.max_pixels = opt.max_pixels;
  ScanReport report;
  int64_t budget = opt.memory_budget_mb * 1024 * 1024;
  ImageSet train = scan_split("train", split.train, dopt, opt, budget, report);
  ImageSet val = scan_split("val", split.val, dopt, opt, budget, report);
  ImageSet test = scan_split("test", split.test, dopt, opt, budget, report);
  res.broken = static_cast<int64_t>(report.broken.size());
  res.ignored = static_cast<int64_t>(folder.ignored.size() + val_folder.ignored.size() + test_folder.ignored.size());

  // The skipped-files list: every file that was not used, and why.
  {
    std::ostringstream tsv;
    tsv << "path\treason\n";
    for (const auto& f : report.broken) tsv << f.path << "\tundecodable: " << f.reason << "\n";
    for (const auto* fl : {&folder, &val_folder, &test_folder})
      for (const auto& f : fl->ignored) tsv << f.path << "\tignored: " << f.reason << "\n";
    for (const auto& f : report.warnings) tsv << f.path << "\tused, decoder warning: " << f.reason << "\n";
    write_file_atomic((fs::path(opt.out_dir) / "skipped_files.tsv").string(), tsv.str());
  }
  if (!report.broken.empty()) {
    log << "  skipped " << report.broken.size() << " undecodable file(s):\n";
    for (size_t i = 0; i < report.broken.size() && i < 10; ++i)
      log << "    " << report.broken[i].path << ": " << report.broken[i].reason << "\n";
    if (report.broken.size() > 10) log << "    ... and " << report.broken.size() - 10 << " more\n";
    log << "    (all listed in " << (fs::path(opt.out_dir) / "skipped_files.tsv").string() << ")\n";
  }
  if (!folder.ignored.empty())
    log << "  ignored " << folder.ignored.size() << " non-image or stray file(s) (listed in skipped_files.tsv)\n";
  if (!report.warnings.empty())
    log << "  " << report.warnings.size() << " image(s) decoded with warnings and used (listed in skipped_files.tsv)\n";
  log << "  split (seed " << opt.train.seed << "): train " << counts_text(train.items(), folder.classes) << "\n"
      << "                 val " << counts_text(val.items(), folder.classes) << "\n"
      << "                 test " << counts_text(test.items(), folder.classes) << "\n";
  for (size_t c = 0; c < folder.classes.size(); ++c)
    if (count_per_class(train.items(), static_cast<int64_t>(folder.classes.size()))[c] == 0)
      throw Error("class '" + folder.classes[c] + "' has no usable training images left; add images or remove the class folder");

  res.initial_val = clf.score(val.size() > 0 ? val : train);
  log << "initial (" << (val.size() > 0 ? "val" : "train") << "): loss " << fmt(res.initial_val.loss) << ", acc "
      << fmt(res.initial_val.acc) << "\n" << std::flush;

  const int epochs = opt.train.epochs;
  res.history = clf.fit(train, val.size() > 0 ? &val : nullptr, [&](const EpochStats& s) {
    log << "epoch " << s.epoch << "/" << epochs << ": loss " << fmt(s.loss) << ", acc " << fmt(s.acc) << ", val_loss "
        << fmt(s.val_loss) << ", val_acc " << fmt(s.val_acc) << ", " << fmt(s.images_per_second, 1) << " img/s, "
        << fmt(s.seconds, 1) << " s\n" << std::flush;
  });
  if (val.size() > 0) res.final_val = clf.score(val);
  if (test.size() > 0) {
    res.test = clf.score(test);
    log << "test: loss " << fmt(res.test.loss) << ", acc " << fmt(res.test.acc) << " (" << res.test.count << " images)\n";
  }

  clf.save(res.model_path);

  // Which file went where, so that evaluation and predictions can be checked against the same split later.
  {
    std::ostringstream sp;
    sp << "split,label,path\n";
    for (const auto& [name, set] : {std::pair<const char*, const ImageSet*>{"train", &train}, {"val", &val}, {"test", &test}})
      for (const auto& it : set->items()) sp << name << "," << folder.classes[it.label] << "," << it.path << "\n";
    write_file_atomic((fs::path(opt.out_dir) / "splits.csv").string(), sp.str());
  }

  std::ostringstream hist;
  hist << "epoch,loss,acc,val_loss,val_acc,seconds,images_per_second\n";
  for (const auto& s : res.history)
    hist << s.epoch << "," << fmt(s.loss, 6) << "," << fmt(s.acc, 6) << "," << fmt(s.val_loss, 6) << ","
         << fmt(s.val_acc, 6) << "," << fmt(s.seconds, 3) << "," << fmt(s.images_per_second, 1) << "\n";
  write_file_atomic((fs::path(opt.out_dir) / "history.csv").string(), hist.str());

  json metrics = {
      {"initial", {{"loss", num(res.initial_val.loss)}, {"acc", num(res.initial_val.acc)},
                   {"on", val.size() > 0 ? "val" : "train"}}},
      {"final_train", res.history.empty() ? json(nullptr)
                                          : json{{"loss", num(res.history.back().loss)}, {"acc", num(res.history.back().acc)}}},
      {"val", val.size() > 0 ? json{{"loss", num(res.final_val.loss)}, {"acc", num(res.final_val.acc)}, {"count", val.size()}}
                             : json(nullptr)},
      {"test", test.size() > 0 ? json{{"loss", num(res.test.loss)}, {"acc", num(res.test.acc)}, {"count", test.size()}}
                               : json(nullptr)},
      {"skipped_undecodable", res.broken},
      {"ignored_files", res.ignored},
  };
  write_file_atomic((fs::path(opt.out_dir) / "metrics.json").string(), metrics.dump(2) + "\n");

  json config = {
      {"created", now_iso8601()},
      {"data_dir", folder.root},
      {"val_dir", opt.val_dir},
      {"test_dir", opt.test_dir},
      {"classes", folder.classes},
      {"counts", {{"train", train.size()}, {"val", val.size()}, {"test", test.size()}}},
      {"backbone", {{"path", bi.path}, {"arch", bi.arch}, {"weights", bi.weights}, {"output_channels", bi.output_channels}}},
      {"image_size", pre.image_size},
      {"normalize", to_string(pre.mode)},
      {"val_split", own_val ? 0.0 : opt.val_split},
      {"test_split", own_test ? 0.0 : opt.test_split},
      {"seed", opt.train.seed},
      {"epochs", opt.train.epochs},
      {"batch_size", opt.train.batch_size},
      {"optimizer", opt.train.optimizer.name},
      {"lr", opt.train.optimizer.lr},
      {"momentum", opt.train.optimizer.momentum},
      {"hidden", opt.train.hidden},
      {"dropout", opt.train.dropout},
      {"device", clf.device().str()},
      {"strict", opt.strict},
  };
  write_file_atomic((fs::path(opt.out_dir) / "config.json").string(), config.dump(2) + "\n");
  log << "model saved to " << res.model_path << "\n";
  return res;
}

}  // namespace tlc
