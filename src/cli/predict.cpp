#include <ATen/ATen.h>

#include <algorithm>
#include <iostream>

#include "commands.h"
#include "tlc/gpu_decode.h"
#include "tlc/image_io.h"
#include "tlc/plots.h"
#include "tlc/run.h"
#include "tlc/trainer.h"
#include "tlc/util.h"

namespace tlc::cli {
namespace {

struct PredictOptions {
  std::string model;
  std::vector<std::string> inputs;
  int top_k = 3;
  bool json = false;
  bool csv = false;
  std::string show;
  int64_t batch_size = 32;
  int threads = 0;
  int64_t max_pixels = 100'000'000;
  std::string device = "auto";
  double min_confidence = 0;
  std::string resize;  // empty: as the model was trained
  std::string decode = "auto";
  std::string engine = "auto", precision = "auto";
  std::string calibration;  // --precision int8's images (default: the run's training images)
  int tta = 0;
  std::string tta_augment;
};

int run_predict(const PredictOptions& o) {
  ModelFile model = ModelFile::load(o.model);
  model.to(resolve_device(o.device));
  model.set_engine(o.engine, o.precision);
  if (!o.resize.empty()) model.set_resize(parse_resize_mode(o.resize));
  calibrate_model(model, o.model, o.calibration, o.threads);
  // int8 is never the default, so what it ran on (and on which images it was calibrated, or why it fell back)
  // is said, on stderr to keep --json and --csv clean.
  if (o.precision == "int8") std::cerr << "tlc predict: " << model.engine_line() << std::endl;
  if (o.tta > 0) {
    model.set_tta(o.tta, tta_augmentation(model.meta(), o.tta_augment));
    std::cerr << "tlc predict: test-time augmentation: " << o.tta << " view(s) of " << to_string(model.tta_spec())
              << (o.tta_augment.empty() ? (model.meta().augment == "none" ? " (the model was trained without augmentation)"
                                                                          : " (the model's training augmentation)")
                                        : "")
              << ", blended 0.25 plain + 0.75 augmented" << std::endl;
  }
  const auto& classes = model.meta().classes;
  if (o.min_confidence > 0 && std::find(classes.begin(), classes.end(), kUnknownLabel) != classes.end())
    std::cerr << "tlc: warning: the model has a class named '" << kUnknownLabel
              << "': with --min-confidence it also stands for images below the threshold" << std::endl;
  std::unique_ptr<GpuDecoder> gpu = open_gpu_decoder(parse_decode_backend(o.decode), model.device());
  std::vector<Prediction> preds = predict_paths(model, o.inputs, o.batch_size, o.threads, o.max_pixels, gpu.get());
  int failed = 0;
  if (o.csv) {
    std::cout << "path,label,probability";
    for (const auto& c : classes) std::cout << "," << csv_field(c);
    std::cout << ",error\n";
  }
  for (const auto& p : preds) {
    if (!p.ok) {
      ++failed;
      std::cerr << "tlc: error: cannot classify " << p.path << ": " << p.error << std::endl;
      if (o.csv) std::cout << csv_field(p.path) << ",," << std::string(classes.size() + 1, ',') << csv_field(p.error) << "\n";
      continue;
    }
    if (o.csv) {
      size_t best = std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin();
      std::cout << csv_field(p.path) << "," << csv_field(predicted_label(p.probabilities, classes, o.min_confidence))
                << "," << p.probabilities[best];
      for (float v : p.probabilities) std::cout << "," << v;
      std::cout << ",\n";
    } else if (!o.json) {  // the JSON is printed whole below, failures included
      std::cout << p.path << ": ";
      if (predicted_label(p.probabilities, classes, o.min_confidence) == kUnknownLabel)
        std::cout << kUnknownLabel << " (no class reaches " << format_percent(o.min_confidence) << "). ";
      std::cout << describe_prediction(p.probabilities, classes, o.top_k) << "\n";
    }
  }
  if (o.json) std::cout << predictions_json(preds, classes, o.top_k, o.min_confidence, 2) << "\n";
  if (!o.show.empty()) {
    // A contact sheet of the classified images with their predicted label and probability.
    std::vector<at::Tensor> tiles;
    std::vector<std::string> captions;
    DecodeOptions dopt;
    dopt.size = 160;
    dopt.resize = model.meta().resize;
    for (const auto& p : preds) {
      if (!p.ok) continue;
      at::Tensor img = at::empty({160, 160, 3}, at::kByte);
      if (!load_resized(p.path, img.data_ptr<uint8_t>(), dopt).ok) continue;
      size_t best = std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin();
      tiles.push_back(img);
      const std::string label = predicted_label(p.probabilities, classes, o.min_confidence);
      captions.push_back(label == classes[best] ? label + " " + format_percent(p.probabilities[best])
                                                : label + " (" + classes[best] + " " +
                                                      format_percent(p.probabilities[best]) + ")");
    }
    if (!tiles.empty()) {
      write_contact_sheet(at::stack(tiles), captions, o.show);
      std::cerr << "contact sheet: " << o.show << std::endl;
    }
  }
  if (preds.empty()) {
    std::cerr << "tlc: error: no image files found in the given paths" << std::endl;
    return 1;
  }
  if (failed > 0) {
    if (preds.size() > 1) std::cerr << "tlc: " << failed << " of " << preds.size() << " input(s) could not be classified" << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace

void setup_predict(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* sub = app.add_subcommand(
      "predict", "Classify images with a trained model: for two classes a sentence (\"This image seems 97% dog, and "
                 "3% cat.\"), for more the top-k classes with percentages.");
  sub->add_option("model", o->model, "model.pt written by `tlc train`, or its run folder")->required();
  sub->add_option("images", o->inputs, "Image files or folders (searched recursively)")->required();
  sub->add_option("--top-k", o->top_k, "How many classes to show for more than two classes")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  auto* json = sub->add_flag("--json", o->json, "Print a JSON array (path, label, top, probabilities) instead of sentences");
  sub->add_flag("--csv", o->csv, "Print CSV: path,label,probability, one column per class, then error (empty, or why "
                "the file could not be classified)")->excludes(json);
  sub->add_option("--show", o->show, "Also write a contact sheet PNG of the images with their predicted labels");
  sub->add_option("--min-confidence", o->min_confidence,
                  "Label an image \"unknown\" (text, JSON and CSV; probabilities still shown) when no class reaches "
                  "this probability, e.g. 0.8 for images that fit none of the classes (0: always the top class)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  add_model_input_flags(sub, o->resize, o->max_pixels);
  add_tta_flags(sub, o->tta, o->tta_augment);
  sub->add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str()->check(CLI::Range(1, 65536));
  sub->add_option("--threads", o->threads, "Decoding threads (0: all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--device", o->device, "auto (CUDA when present), cpu or cuda")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  add_decode_flag(sub, o->decode);
  add_engine_flags(sub, o->engine, o->precision);
  add_calibration_flag(sub, o->calibration);
  sub->callback([o, exit_code] { *exit_code = run_predict(*o); });
}

}  // namespace tlc::cli
