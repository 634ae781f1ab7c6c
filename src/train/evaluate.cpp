// `tlc evaluate`: a saved model scored on labelled images.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tlc/error.h"
#include "tlc/plots.h"
#include "tlc/run.h"
#include "tlc/run_folder.h"
#include "tlc/prefetch.h"
#include "tlc/trainer.h"
#include "tlc/util.h"

namespace fs = std::filesystem;

namespace tlc {
namespace {

// The test rows of a run's splits.csv (read as CSV; relative paths of older run folders resolved against
// the working directory their config.json recorded, else the current one).
std::vector<ImageItem> test_split_items(const std::string& splits, const std::vector<std::string>& classes) {
  std::vector<ImageItem> items;
  for (const SplitRow& r : read_splits(splits, recorded_cwd(fs::path(splits).parent_path().string()))) {
    if (r.split != "test") continue;
    auto it = std::find(classes.begin(), classes.end(), r.label);
    if (it == classes.end()) throw Error(splits + " names class '" + r.label + "', which the model does not have");
    items.push_back({r.path, it - classes.begin()});
  }
  return items;
}

}  // namespace

EvaluateResult run_evaluate(const EvaluateOptions& opt) {
  ModelFile model = ModelFile::load(opt.model_path);
  model.to(resolve_device(opt.device));
  EvaluateResult r;
  r.classes = model.meta().classes;
  const std::string model_dir = fs::path(opt.model_path).parent_path().string();
  std::vector<ImageItem> items;
  if (!opt.data_dir.empty()) {
    ImageFolder f = list_image_folder_with_classes(opt.data_dir, r.classes);
    items = f.items;
    r.skipped = f.ignored;
    r.source = f.root;
  } else {
    const std::string splits = (fs::path(model_dir.empty() ? "." : model_dir) / "splits.csv").string();
    if (!fs::exists(splits))
      throw Error("no DATA_DIR given and no splits.csv beside " + opt.model_path +
                  "; give a folder with one sub-folder per class to evaluate on");
    items = test_split_items(splits, r.classes);
    r.source = "the run's test split (" + splits + ")";
    // Files listed there that are gone are "missing", not "undecodable": the data folder moved or changed.
    std::vector<ImageItem> present;
    for (auto& it : items) {
      std::error_code ec;
      if (fs::exists(it.path, ec)) present.push_back(std::move(it));
      else r.skipped.push_back({it.path, "missing (listed in splits.csv)"});
    }
    if (present.empty() && !r.skipped.empty())
      throw Error("all " + std::to_string(r.skipped.size()) + " test images listed in " + splits + " are missing (" +
                  r.skipped.front().path + ", ...); was the data folder moved? Evaluate on a folder with one "
                  "sub-folder per class: tlc evaluate " + opt.model_path + " DATA_DIR");
    items = std::move(present);
  }
  if (items.empty()) throw Error("nothing to evaluate: " + r.source + " holds no images");
  DecodeOptions dopt;
  dopt.size = static_cast<int>(model.meta().image_size);
  ScanReport report;
  ImageSet set = ImageSet::scan(items, dopt, opt.threads, int64_t{1} << 40, false, report);
  r.skipped.insert(r.skipped.end(), report.broken.begin(), report.broken.end());
  if (set.size() == 0) throw Error("none of the " + std::to_string(items.size()) + " images could be decoded");
  std::vector<at::Tensor> parts;
  std::vector<int64_t> labels;
  auto batches = prefetch_batches(set, batches_in_order(set.size(), opt.batch_size), model.device());
  for (int64_t k = 0; k < batches->count(); ++k) parts.push_back(model.predict_proba(batches->next()));
  for (const auto& it : set.items()) labels.push_back(it.label);
  at::Tensor probs = at::cat(parts).contiguous();
  r.eval = evaluate_probabilities(probs, labels, opt.top_k);
  auto a = probs.accessor<float, 2>();
  for (int64_t i = 0; i < set.size(); ++i) {
    int64_t pred = probs[i].argmax().item<int64_t>();
    if (pred != labels[i])
      r.misclassified.push_back({set.items()[i].path, r.classes[labels[i]], r.classes[pred], a[i][pred]});
  }
  const std::string out = opt.out_dir.empty() ? (model_dir.empty() ? "." : model_dir) : opt.out_dir;
  fs::create_directories(out);
  r.confusion_png = (fs::path(out) / "confusion.png").string();
  r.misclassified_csv = (fs::path(out) / "misclassified.csv").string();
  plot_confusion(r.eval, r.classes, r.confusion_png);
  std::ostringstream csv;
  csv << "path,true_label,predicted_label,probability\n";
  for (const auto& m : r.misclassified)
    csv << csv_field(m.path) << "," << csv_field(m.true_label) << "," << csv_field(m.predicted_label) << ","
        << m.probability << "\n";
  write_file_atomic(r.misclassified_csv, csv.str());
  return r;
}

}  // namespace tlc
