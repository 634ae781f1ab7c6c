#pragma once
// A frozen convolutional base loaded from TorchScript (written by scripts/export_backbone.py).
#include <torch/script.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tlc {

struct BackboneInfo {
  std::string path;
  std::string arch = "unknown";       // tlc_arch attribute, "unknown" when the file has none
  std::string weights = "unknown";    // "imagenet", "random" or "unknown"
  std::string normalize;              // expected normalization, empty when the file does not say
  int64_t input_size = 0;             // size the weights were trained at, 0 when unknown
  int64_t output_channels = 0;        // width of the feature map (probed when the file does not say)
};

struct LayerInfo {
  int index = 0;
  std::string name;   // dotted path inside the module, e.g. "body.28"
  std::string type;   // e.g. "Conv2d"
  int64_t params = 0;
  bool trainable = false;
};

class Backbone {
 public:
  // Loads on CPU, freezes every parameter, sets eval mode, reads the metadata and probes the output width.
  // Throws tlc::Error naming the file and scripts/export_backbone.py when the file is missing, is not
  // TorchScript, or does not map [N,3,H,W] to an [N,C,h,w] feature map.
  static Backbone load(const std::string& path);
  // Wraps an already loaded module (e.g. the backbone inside a saved model file).
  static Backbone from_module(torch::jit::Module module, const std::string& origin);

  const BackboneInfo& info() const { return info_; }
  torch::jit::Module& module() { return module_; }
  const torch::jit::Module& module() const { return module_; }

  // Leaf modules in order, with their own parameter counts.
  std::vector<LayerInfo> layers() const;
  int64_t parameter_count() const;

  // Feature map [N,C,h,w] for a normalized batch. Builds a graph only when some parameter trains.
  at::Tensor forward(const at::Tensor& x);
  // Global-average-pooled features [N,C].
  at::Tensor pooled_features(const at::Tensor& x);

  // Fine-tuning: makes the parameters of the last `n` layers that have parameters trainable (BatchNorm
  // layers stay in inference mode: the module stays in eval mode) and returns them. n = 0 freezes all.
  // Throws tlc::Error when the backbone has fewer such layers.
  std::vector<at::Tensor> unfreeze_last(int n);
  std::vector<at::Tensor> trainable_parameters() const;
  bool any_trainable() const;
  int64_t layers_with_parameters() const;

  // A backbone whose body is a Sequential (VGG16, the tiny test nets) can run as prefix + suffix, split
  // before top-level child `k`; others (traced EfficientNet) cannot, and these return -1 / throw.
  // first_trainable_child(): the index of the first top-level child holding a trainable parameter.
  int64_t first_trainable_child() const;
  // Output shape ([1,C,h,w]) of each top-level child for a size x size input, keyed by layer name; empty for
  // backbones that are not Sequential (their inner shapes are not observable from TorchScript).
  std::vector<std::pair<std::string, std::vector<int64_t>>> layer_output_shapes(int64_t size);
  int64_t sequential_length() const;
  at::Tensor forward_range(const at::Tensor& x, int64_t begin, int64_t end);  // children [begin, end)

  void to(const c10::Device& device);

  // Reduced precision for the frozen forward passes (feature extraction, evaluation, prediction): a copy of
  // the module in `dtype` (convolution weights channels-last, like its input) runs on channels-last input and
  // the output comes back as float32. Passes that train backbone parameters always run in float32, on the
  // module itself; the copy takes their weights again before its next use. at::kFloat switches it off.
  void set_frozen_dtype(at::ScalarType dtype);
  at::ScalarType frozen_dtype() const { return frozen_dtype_; }

 private:
  torch::jit::Module module_;
  BackboneInfo info_;
  at::ScalarType frozen_dtype_ = at::kFloat;
  std::shared_ptr<torch::jit::Module> reduced_;  // module_ in frozen_dtype_, when not float32
  bool reduced_stale_ = false;  // module_'s weights may differ from reduced_'s: set by unfreeze_last(n > 0),
                                // the only way weights become trainable, so every change passes through it
  void refresh_reduced();
};

std::string module_type_name(const torch::jit::Module& m);

}  // namespace tlc
