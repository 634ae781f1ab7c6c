#pragma once
// Prediction of image files with a saved model (src/model/predict.cpp), and the sentences tlc prints for it.
// The model layer's own header: the run layer (tlc/run.h) builds on it, never the other way round.
#include <cstdint>
#include <string>
#include <vector>

#include "tlc/gpu_decode.h"
#include "tlc/model_file.h"

namespace tlc {

struct Prediction {
  std::string path;
  bool ok = false;
  std::string error;
  std::vector<float> probabilities;  // one per class, in the model's class order
};

// How `tlc predict` decodes images for `meta`'s model (its size and resize mode, the pixel limit): the one
// decoding rule of prediction, which `tlc serve` applies to request bodies too.
DecodeOptions predict_decode_options(const ModelMeta& meta, int64_t max_pixels);

// Decodes and classifies the given files; folders are walked for image files by list_image_files (the rule
// training uses). Images above `max_pixels` fail with the reason instead of being decoded.
std::vector<Prediction> predict_paths(ModelFile& model, const std::vector<std::string>& paths, int64_t batch_size,
                                      int threads, int64_t max_pixels = 100'000'000, GpuDecoder* gpu = nullptr);

// "This image seems 97% dog, and 3% cat." for two classes; for more, the top-k as "Sneaker 91%, Bag 5%, ...".
std::string describe_prediction(const std::vector<float>& probs, const std::vector<std::string>& classes, int top_k);
std::string format_percent(double p);

// The JSON of `tlc predict --json` (and of `tlc serve`'s /predict): an array with, per prediction,
// {path, label, top: [{class, probability}] (top_k, at least 1), probabilities: {class: p}}, or {path, error}
// for one that failed. `indent` as nlohmann::json::dump (-1: one line).
std::string predictions_json(const std::vector<Prediction>& predictions, const std::vector<std::string>& classes,
                             int top_k, double min_confidence, int indent = 2);

// The label for one prediction: the most probable class, or kUnknownLabel when its probability is below
// `min_confidence` (predict --min-confidence: images that fit no class; 0 never says unknown).
inline constexpr const char* kUnknownLabel = "unknown";
std::string predicted_label(const std::vector<float>& probs, const std::vector<std::string>& classes,
                            double min_confidence);

}  // namespace tlc
