// `tlc evaluate`: a saved model scored on labelled images.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tlc/error.h"
#include "tlc/image_io.h"
#include "tlc/labels.h"
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

// fastai's plot_top_losses: the images with the highest cross-entropy loss, each captioned with its true
// class (and the probability the model gave it) and the prediction with its probability.
void write_worst_sheet(const std::vector<ImageItem>& items, const at::Tensor& probs, const std::vector<std::string>& classes,
                       const DecodeOptions& decoded, int count, const std::string& path) {
  auto a = probs.accessor<float, 2>();
  std::vector<std::pair<double, size_t>> loss;
  for (size_t i = 0; i < items.size(); ++i)
    loss.push_back({-std::log(std::max(1e-12f, a[i][items[i].label])), i});
  std::stable_sort(loss.begin(), loss.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  constexpr int kTile = 160;
  DecodeOptions dopt = decoded;  // the evaluation's resize mode and pixel limit, at the sheet's tile size
  dopt.size = kTile;
  std::vector<at::Tensor> tiles;
  std::vector<std::string> captions;
  for (const auto& [l, i] : loss) {
    if (static_cast<int>(tiles.size()) >= count) break;
    at::Tensor img = at::empty({kTile, kTile, 3}, at::kByte);
    if (!load_resized(items[i].path, img.data_ptr<uint8_t>(), dopt).ok) continue;
    const int64_t t = items[i].label, p = probs[static_cast<int64_t>(i)].argmax().item<int64_t>();
    tiles.push_back(img);
    captions.push_back("true " + classes[t] + " " + format_percent(a[i][t]) + "\npred " + classes[p] + " " +
                       format_percent(a[i][p]));
  }
  if (tiles.empty()) throw Error("--show " + path + ": none of the evaluated images could be read again");
  write_contact_sheet(at::stack(tiles), captions, path);
}

}  // namespace

EvaluateResult run_evaluate(const EvaluateOptions& opt) {
  // A run folder stands for its model.pt; splits.csv and the outputs are then found beside that.
  const std::string model_path = resolve_model_path(opt.model_path);
  ModelFile model = ModelFile::load(model_path);
  model.to(resolve_device(opt.device));
  model.set_engine(opt.engine, opt.precision);
  if (!opt.resize.empty()) model.set_resize(parse_resize_mode(opt.resize));
  if (opt.tta > 0) model.set_tta(opt.tta, tta_augmentation(model.meta(), opt.tta_augment));
  EvaluateResult r;
  r.classes = model.meta().classes;
  const std::string model_dir = fs::path(model_path).parent_path().string();
  std::vector<ImageItem> items;
  if (opt.data_dir.empty() && opt.labels.active())
    throw Error("--labels/--label-regex label the images of DATA_DIR; give the folder to evaluate");
  if (!opt.data_dir.empty()) {
    ImageFolder f = list_images_with_classes(opt.data_dir, opt.labels, r.classes);
    items = f.items;
    r.skipped = f.ignored;
    r.source = f.root;
  } else {
    const std::string splits = (fs::path(model_dir.empty() ? "." : model_dir) / "splits.csv").string();
    if (!fs::exists(splits))
      throw Error("no DATA_DIR given and no splits.csv beside " + model_path +
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
  calibrate_model(model, opt.model_path, opt.calibration_dir, opt.threads);
  r.engine = model.engine_line();
  DecodeOptions dopt;
  dopt.size = static_cast<int>(model.meta().image_size);
  dopt.resize = model.meta().resize;
  dopt.max_pixels = opt.max_pixels;
  ScanReport report;
  ImageSet set = ImageSet::scan(items, dopt, opt.threads, int64_t{1} << 40, false, report);
  r.skipped.insert(r.skipped.end(), report.broken.begin(), report.broken.end());
  if (set.size() == 0) throw Error("none of the " + std::to_string(items.size()) + " images could be decoded");
  std::vector<int64_t> labels;
  std::vector<at::Tensor> plain_parts;  // with --tta: the predictions without it
  auto probabilities = [&] {
    std::vector<at::Tensor> parts;
    plain_parts.clear();
    auto batches = prefetch_batches(set, batches_in_order(set.size(), opt.batch_size), model.device());
    for (int64_t k = 0; k < batches->count(); ++k) {
      at::Tensor plain;
      parts.push_back(model.predict_proba(batches->next(), &plain));
      if (plain.defined()) plain_parts.push_back(plain);
    }
    return at::cat(parts).contiguous();
  };
  for (const auto& it : set.items()) labels.push_back(it.label);
  at::Tensor probs = probabilities();
  r.eval = evaluate_probabilities(probs, labels, opt.top_k);
  if (model.tta_views() > 0)
    r.tta = EvaluateResult::Tta{model.tta_views(), to_string(model.tta_spec()),
                                evaluate_probabilities(at::cat(plain_parts).contiguous(), labels, opt.top_k)};
  if (opt.precision == "int8") {
    // Measuring int8 is the point of this run: when the int8 engine could not be made, say so instead of a
    // cost of zero.
    if (r.engine.rfind("engine: openvino", 0) != 0 || r.engine.find(" int8 (") == std::string::npos)
      throw Error("--precision int8 could not run, so there is no int8 cost to measure: " + r.engine);
    // int8 changes results by more than rounding: the same images again in fp32 say by how much.
    model.set_engine(opt.engine, "fp32");
    const at::Tensor ref = probabilities();
    EvaluateResult::Int8Cost c;
    c.fp32 = evaluate_probabilities(ref, labels, opt.top_k);
    c.fp32_engine = model.engine_line();
    c.agreement = probs.argmax(1).eq(ref.argmax(1)).to(at::kDouble).mean().item<double>();
    c.max_probability_diff = (probs - ref).abs().max().item<double>();
    r.int8_cost = c;
  }
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
  if (!opt.show.empty()) {
    write_worst_sheet(set.items(), probs, r.classes, dopt, std::max(1, opt.show_count), opt.show);
    r.worst_png = opt.show;
  }
  return r;
}

}  // namespace tlc
