// Data preparation for training runs: listing, splitting, decoding, and the reports of what was skipped and
// which file went where (skipped_files.tsv, splits.csv).
#include <algorithm>
#include <filesystem>
#include <set>
#include <ostream>
#include <sstream>

#include "run_internal.h"
#include "../train/trainer_internal.h"  // shard_range, the first pass: the estimator's internals
#include "tlc/calibration.h"
#include "tlc/data_checks.h"
#include "tlc/dist.h"
#include "tlc/error.h"
#include "tlc/formats.h"
#include "tlc/labels.h"
#include "tlc/run_folder.h"
#include "tlc/text.h"
#include "tlc/util.h"

namespace fs = std::filesystem;

namespace tlc::detail {
namespace {

std::string counts_text(const std::vector<ImageItem>& items, const std::vector<std::string>& classes) {
  auto c = count_per_class(items, static_cast<int64_t>(classes.size()));
  std::string s = std::to_string(items.size()) + " (";
  for (size_t i = 0; i < classes.size(); ++i) s += (i ? ", " : "") + classes[i] + " " + std::to_string(c[i]);
  return s + ")";
}

// A scan report as bytes (length-prefixed fields), to gather the ranks' reports.
std::string encode_report(const ScanReport& r) {
  std::string out;
  auto field = [&](const std::string& f) { out += std::to_string(f.size()) + ":" + f; };
  for (const auto* list : {&r.broken, &r.warnings}) {
    field(std::to_string(list->size()));
    for (const auto& f : *list) {
      field(f.path);
      field(f.reason);
    }
  }
  return out;
}

void append_report(const std::string& bytes, ScanReport& r) {
  size_t at = 0;
  auto field = [&] {
    const size_t colon = bytes.find(':', at);
    const size_t n = std::stoul(bytes.substr(at, colon - at));
    std::string f = bytes.substr(colon + 1, n);
    at = colon + 1 + n;
    return f;
  };
  for (auto* list : {&r.broken, &r.warnings}) {
    const size_t n = std::stoul(field());
    for (size_t i = 0; i < n; ++i) {
      std::string path = field();
      list->push_back({path, field()});
    }
  }
}

// Before any work the ranks compare what they listed and how they split it: the class list, every file
// (relative to its folder) with its label, and the split settings. Different data mounted on different
// machines stops the job here with one error naming the differing rank.
void check_same_data_on_every_rank(const DataSpec& d, const ImageFolder& f, const Split& split) {
  Comm& comm = world();
  if (comm.world_size() == 1) return;
  Hasher h;
  for (const auto& c : f.classes) h.add(c);
  h.add(d.image_size);
  h.add(static_cast<int64_t>(d.seed));
  h.add(to_string(d.resize));
  int64_t files = 0;
  for (const auto* set : {&split.train, &split.val, &split.test}) {
    h.add(std::string("split"));
    for (const auto& it : *set) {
      h.add(std::filesystem::path(it.path).lexically_relative(f.root).string());
      h.add(it.label);
    }
    files += static_cast<int64_t>(set->size());
  }
  const std::string mine = std::to_string(f.classes.size()) + " classes, " + std::to_string(files) + " files (train " +
                           std::to_string(split.train.size()) + ", val " + std::to_string(split.val.size()) + ", test " +
                           std::to_string(split.test.size()) + "), fingerprint " + std::to_string(h.h);
  const std::vector<std::string> all = comm.allgather_bytes(mine);
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw Error("rank " + std::to_string(r) + " sees other data than rank 0: rank 0 has " + all[0] + " in " + f.root +
                  " (here, rank " + std::to_string(comm.rank()) + ": " + mine + "), rank " + std::to_string(r) + " has " +
                  all[r] + "; every rank must see the same image folder (mount the same data on every machine) and get "
                  "the same --image-size/--seed/--val-split/--test-split/--resize");
}

}  // namespace

ImageFolder list_data(const DataSpec& d) {
  if (!d.labels.csv.empty() && (!d.val_dir.empty() || !d.test_dir.empty()))
    throw Error("--labels lists the images of the data folder only; with it, hold out images with --val-split/"
                "--test-split instead of --val-dir/--test-dir (or label every folder with --label-regex)");
  return list_images(d.data_dir, d.labels);
}

// With `first_pass`, the training and validation images go through its feature sinks while they are
// decoded, so that the head phase's feature extraction overlaps the decoding.
DataSpec data_spec_of(const TrainRunOptions& opt) {
  return DataSpec{opt.data_dir,   opt.val_dir,   opt.test_dir,         opt.val_split,
                  opt.test_split, opt.train.seed, opt.image_size,      opt.max_pixels,
                  opt.memory_budget_mb, opt.threads, opt.strict, parse_resize_mode(opt.resize), opt.labels};
}

Split split_of(const DataSpec& d, const ImageFolder& folder) {
  return split_stratified(folder.items, static_cast<int64_t>(folder.classes.size()), d.val_dir.empty() ? d.val_split : 0.0,
                          d.test_dir.empty() ? d.test_split : 0.0, d.seed, folder.classes);
}

void calibrate_on_training_images(TransferClassifier& clf, const DataSpec& d, const ImageFolder& folder) {
  if (!clf.backbone().needs_calibration()) return;
  DecodeOptions dopt;
  dopt.size = static_cast<int>(d.image_size);
  dopt.max_pixels = d.max_pixels;
  dopt.resize = d.resize;
  int64_t used = 0;
  const NormalizeSpec spec = NormalizeSpec::from_mode(clf.preprocess().mode);
  const at::Tensor c = calibration_batch(split_of(d, folder).train, dopt, spec, d.threads, &used);
  clf.backbone().set_calibration(c, std::to_string(used) + " training image" + (used == 1 ? "" : "s"));
}

PreparedData prepare_data(const DataSpec& d, ImageFolder folder, TransferClassifier* first_pass) {
  PreparedData p;
  p.folder = std::move(folder);
  const bool own_val = !d.val_dir.empty(), own_test = !d.test_dir.empty();
  if (own_val) p.val_folder = list_images_with_classes(d.val_dir, d.labels, p.folder.classes);
  if (own_test) p.test_folder = list_images_with_classes(d.test_dir, d.labels, p.folder.classes);
  Split split = split_of(d, p.folder);
  if (own_val) split.val = p.val_folder.items;
  if (own_test) split.test = p.test_folder.items;
  DecodeOptions dopt;
  dopt.size = static_cast<int>(d.image_size);
  dopt.max_pixels = d.max_pixels;
  dopt.resize = d.resize;
  int64_t budget = d.memory_budget_mb * 1024 * 1024;
  check_same_data_on_every_rank(d, p.folder, split);
  Comm& comm = world();
  auto scan = [&](const std::vector<ImageItem>& items, const char* role) {
    const ChunkSink sink = first_pass && role ? first_pass->first_pass_sink(role) : ChunkSink{};
    if (comm.world_size() == 1) {
      // --strict is judged by check_training_data once all splits are decoded, so that it counts every file.
      ImageSet s = ImageSet::scan(items, dopt, d.threads, budget, false, p.report, sink);
      if (s.in_memory()) budget -= s.size() * dopt.size * dopt.size * 3;
      return s;
    }
    // Distributed: each rank decodes its block of the items (with the first pass's features), the reports
    // and features are gathered, and every rank gets the whole set, decoded again on demand.
    const auto [lo, hi] = shard_range(static_cast<int64_t>(items.size()), comm);
    ScanReport mine;
    ImageSet::scan(std::vector<ImageItem>(items.begin() + lo, items.begin() + hi), dopt, d.threads, 0, false, mine, sink);
    if (first_pass && role) first_pass->gather_first_pass(role);
    ScanReport all;
    for (const std::string& bytes : comm.allgather_bytes(encode_report(mine))) append_report(bytes, all);
    std::set<std::string> broken;
    for (const auto& b : all.broken) broken.insert(b.path);
    std::vector<ImageItem> good;
    for (const auto& it : items)
      if (!broken.count(it.path)) good.push_back(it);
    p.report.broken.insert(p.report.broken.end(), all.broken.begin(), all.broken.end());
    p.report.warnings.insert(p.report.warnings.end(), all.warnings.begin(), all.warnings.end());
    return ImageSet::on_demand(std::move(good), dopt, d.threads);
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
  const bool writer = world().is_root();  // in a distributed run every rank has the merged report; rank 0 writes
  if (writer) write_file_atomic(path_in(out_dir, "skipped_files.tsv"), tsv.str());
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
  std::vector<SplitRow> rows;
  for (const auto& [name, set] : {std::pair<const char*, const ImageSet*>{"train", &p.train}, {"val", &p.val}, {"test", &p.test}})
    for (const auto& it : set->items()) rows.push_back({name, cl[it.label], it.path});
  if (writer) write_file_atomic(path_in(out_dir, "splits.csv"), splits_csv(rows));
}


void warn_without_validation(const PreparedData& p, const TrainOptions& t, std::ostream& log) {
  if (p.val.size() > 0 || (t.keep != "best" && t.patience <= 0)) return;
  std::string flags = t.keep == "best" ? "--keep best" : "";
  if (t.patience > 0) flags += std::string(flags.empty() ? "" : " and ") + "--patience " + std::to_string(t.patience);
  log << "  warning: " << flags << " watch the validation loss, and this run has no validation images; "
      << (t.keep == "best" ? "the last epoch's model is kept" : "") << (t.keep == "best" && t.patience > 0 ? " and " : "")
      << (t.patience > 0 ? "every epoch runs" : "") << " (give --val-split above 0 or --val-dir)\n";
}

}  // namespace tlc::detail

namespace tlc {

void calibrate_model(ModelFile& model, const std::string& model_arg, const std::string& calibration_dir, int threads) {
  using namespace detail;
  if (!model.needs_calibration()) {
    if (!calibration_dir.empty())
      throw Error("--calibration " + calibration_dir + " is for --precision int8, and this command runs " +
                  model.engine_line().substr(8) + "; drop --calibration, or add --precision int8");
    return;
  }
  if (!calibration_dir.empty()) {
    std::vector<ImageItem> items;
    for (const std::string& f : list_image_files(calibration_dir)) items.push_back({f, 0});
    if (items.empty()) throw Error("--calibration " + calibration_dir + " holds no image files");
    model.set_calibration(items, threads, "images of " + calibration_dir);
    return;
  }
  // A run folder (or its model.pt): the training rows its splits.csv recorded, the very images the head was
  // trained on (never its validation or test images, even if the data folder changed since).
  const fs::path dir = fs::path(resolve_model_path(model_arg)).parent_path();
  const fs::path splits = (dir.empty() ? fs::path(".") : dir) / "splits.csv";
  const std::string way_out = "give --calibration DIR: a few hundred images like the ones the model will see (its "
                              "training images are best)";
  if (!fs::exists(splits))
    throw Error("--precision int8 calibrates on images like the ones the model will see, and " + model_arg +
                " is a model file without its run folder (no splits.csv beside it); " + way_out);
  std::vector<ImageItem> items;
  int64_t listed = 0;
  for (const SplitRow& r : read_splits(splits.string(), recorded_cwd(dir.string()))) {
    if (r.split != "train") continue;
    ++listed;
    std::error_code ec;
    if (fs::exists(r.path, ec)) items.push_back({r.path, 0});
  }
  if (items.empty())
    throw Error("--precision int8 calibrates on the run's training images, and " +
                (listed == 0 ? splits.string() + " lists none" : "all " + std::to_string(listed) + " listed in " +
                                                                  splits.string() + " are missing") + "; " + way_out);
  model.set_calibration(items, threads, "training images of the run (" + splits.string() + ")");
}

}  // namespace tlc
