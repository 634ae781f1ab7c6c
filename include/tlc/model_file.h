#pragma once
// The saved model: ONE self-contained TorchScript file (backbone + head + class names + preprocessing) that
// `tlc predict` needs alone and that Python can use:
//   m = torch.jit.load("model.pt"); m.class_names; probs = m.classify_images(uint8_NHWC_RGB)
//   or probs = m(normalized_float_NCHW); m.image_size, m.normalize, m.resize name the preprocessing.
#include <torch/script.h>

#include <string>
#include <vector>

#include "tlc/augment.h"
#include "tlc/backbone.h"
#include "tlc/classifier.h"
#include "tlc/dataset.h"
#include "tlc/image_io.h"
#include "tlc/normalize.h"

namespace tlc {

constexpr int64_t kModelFormatVersion = 1;

struct ModelMeta {
  std::vector<std::string> classes;
  int64_t image_size = 160;
  NormalizeMode normalize = NormalizeMode::minus1to1;
  ResizeMode resize = ResizeMode::stretch;  // files without the `resize` attribute were made with stretch
  std::string backbone_arch, backbone_weights;
  std::string augment = "none";  // the training augmentation (tlc/augment.h), the default of --tta's views
};

// Builds the combined module and writes it atomically (temp file + fsync + rename).
void save_model_file(const std::string& path, Backbone& backbone, Head& head, const ModelMeta& meta);

// The model file a user meant: `path` itself, or RUN_DIR/model.pt for a run folder. Throws tlc::Error that
// says what was expected for a missing path, or a folder without model.pt.
std::string resolve_model_path(const std::string& path);

// fastai's blend (Learner.tta, beta 0.25): 0.25 x the plain prediction + 0.75 x the mean of the augmented
// ones, on probabilities.
constexpr double kTtaPlainWeight = 0.25;
at::Tensor tta_blend(const at::Tensor& plain, const at::Tensor& augmented_mean);
// The transforms --tta draws from: `given` (--tta-augment) when not empty, else the model's training
// augmentation, else horizontal flips (a model trained without augmentation).
AugmentSpec tta_augmentation(const ModelMeta& meta, const std::string& given);

class ModelFile {
 public:
  // Takes a model.pt or a run folder (resolve_model_path). Throws tlc::Error naming the file when it is
  // missing, an image or other non-model file (arguments swapped), damaged, or not a tlc model.
  static ModelFile load(const std::string& path);
  const ModelMeta& meta() const { return meta_; }
  // Decode with another resize mode than the one the model was trained with (predict/evaluate --resize).
  void set_resize(ResizeMode mode) { meta_.resize = mode; }
  NormalizeSpec spec() const { return NormalizeSpec::from_mode(meta_.normalize); }
  torch::jit::Module& module() { return module_; }
  // Moves the model to a device; predict_proba then runs there (its input may be on any device).
  void to(const c10::Device& device);
  c10::Device device() const { return device_; }
  // The engine of predict_proba's backbone pass (tlc/engine.h: --engine, --precision; call after to()).
  // Without it the file's own TorchScript runs in float32, as Python's torch.jit.load(model.pt) would.
  void set_engine(const std::string& engine, const std::string& precision);
  // "engine: ..." (what runs and why; builds the engine), or the float32 TorchScript without set_engine.
  std::string engine_line();
  // --precision int8 (after set_engine): the engine is calibrated on up to kCalibrationImages of these files,
  // decoded and normalized as the model's input (undecodable ones skipped); `what` names them in the engine
  // line. needs_calibration(): int8 was asked for and no calibration is set.
  void set_calibration(const std::vector<ImageItem>& items, int threads, const std::string& what);
  bool needs_calibration() const { return frozen_ && frozen_->needs_calibration(); }
  // Test-time augmentation (predict/evaluate --tta N): predict_proba then blends the plain prediction with
  // the mean of `views` augmented ones (tta_blend). The views of an image are drawn from its pixels
  // (pixel_key), so they do not depend on the batch, the order or the device. 0 turns it off.
  void set_tta(int views, const AugmentSpec& spec);
  int tta_views() const { return tta_views_; }
  const AugmentSpec& tta_spec() const { return tta_spec_; }
  // Class probabilities [N,K] (on the CPU) for a uint8 [N,S,S,3] RGB batch already at meta().image_size.
  // With TTA on, `plain` (when given) receives the prediction without it.
  at::Tensor predict_proba(const at::Tensor& images_u8, at::Tensor* plain = nullptr);
  at::Tensor logits(const at::Tensor& normalized);

 private:
  torch::jit::Module module_;
  ModelMeta meta_;
  c10::Device device_{c10::kCPU};
  std::string path_;
  std::shared_ptr<Backbone> frozen_;  // the file's backbone on its engine, after set_engine
  int tta_views_ = 0;
  AugmentSpec tta_spec_;
  at::Tensor head_logits(const at::Tensor& pooled);
  at::Tensor proba_of(const at::Tensor& images_u8, const at::Tensor& view_params);  // undefined params: plain
};

}  // namespace tlc
