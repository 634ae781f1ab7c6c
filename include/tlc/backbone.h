#pragma once
// A frozen convolutional base loaded from TorchScript (written by scripts/export_backbone.py).
#include <torch/script.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tlc/engine.h"

namespace tlc {

struct BackboneInfo {
  std::string path;
  std::string arch = "unknown";       // tlc_arch attribute, "unknown" when the file has none
  std::string weights = "unknown";    // "imagenet", "random" or "unknown"
  std::string normalize;              // expected normalization, empty when the file does not say
  int64_t input_size = 0;             // size the weights were trained at, 0 when unknown
  int64_t output_channels = 0;        // width of the feature map (probed when the file does not say)
};

// A layer: a module that holds parameters of its own (a leaf, or e.g. a ConvNeXt block's layer scale, an
// attention's input projection), or a leaf without any (ReLU, pooling). Every parameter belongs to one layer.
struct LayerInfo {
  int index = 0;
  std::string name;   // dotted path inside the module, e.g. "body.28"
  std::string type;   // e.g. "Conv2d"
  int64_t params = 0;  // its own parameters (not its children's)
  bool trainable = false;
};

// A block: one top-level entry of the backbone's `blocks` Sequential (stem, stages, ...; docs/ZOO.md), or of the
// older flat `body` Sequential (VGG, the test nets: one layer each). The unit of prefix + suffix runs.
struct BlockInfo {
  int index = 0;
  std::string name;   // e.g. "blocks.layer4" or "body.28"
  std::string type;   // e.g. "Sequential", "Conv2d"
  int64_t params = 0;                // all parameters inside it
  int64_t layers_with_params = 0;    // how many of layers() it holds that have parameters
  bool trainable = false;            // some parameter inside it trains
};

class Backbone {
 public:
  // Loads on CPU, freezes every parameter, sets eval mode, reads the metadata and probes the output width.
  // Throws tlc::Error naming the file and scripts/export_backbone.py when the file is missing, is not
  // TorchScript, or does not map [N,3,H,W] to an [N,C,h,w] feature map.
  static Backbone load(const std::string& path);
  // Wraps an already loaded module (e.g. the backbone inside a saved model file).
  static Backbone from_module(torch::jit::Module module, const std::string& origin);
  // load() for callers that load one file many times (the Python estimator: every fit of a model search
  // builds a classifier): the first call loads and probes as load() does and keeps the result in a
  // process-wide cache keyed by the file's path, inode, size and modification time (a rewritten file is
  // loaded anew); each call returns an independent copy (parameters deep-copied, so fine-tuning one copy
  // changes no other; the TorchScript methods and what their executor learnt on the first runs are shared)
  // without reading or probing the file again. Holds at most kLoadCacheFiles files, least recently used out.
  static Backbone load_cached(const std::string& path);
  static constexpr size_t kLoadCacheFiles = 4;
  // The cache holds one CPU copy of each file's parameters (VGG16's convolutional base: 59 MB).
  // Empties that cache (the copies handed out are independent of it); returns how many files it held.
  static size_t clear_load_cache();

  const BackboneInfo& info() const { return info_; }
  torch::jit::Module& module() { return module_; }
  const torch::jit::Module& module() const { return module_; }

  // Layers (see LayerInfo) in module order, with their own parameter counts.
  std::vector<LayerInfo> layers() const;
  // Blocks in order; empty for a backbone without a `blocks` or `body` Sequential (e.g. a traced
  // EfficientNet-Lite0 file from before the block layout), which then cannot run in parts.
  std::vector<BlockInfo> blocks() const;
  int64_t parameter_count() const;

  // Feature map [N,C,h,w] for a normalized batch. Builds a graph only when some parameter trains.
  at::Tensor forward(const at::Tensor& x);
  // Global-average-pooled features [N,C].
  at::Tensor pooled_features(const at::Tensor& x);

  // Fine-tuning: makes the parameters of the last `n` layers that have parameters trainable (BatchNorm
  // layers stay in inference mode: the module stays in eval mode) and returns them. n = 0 freezes all.
  // Throws tlc::Error when the backbone has fewer such layers.
  std::vector<at::Tensor> unfreeze_last(int n);
  // Fine-tuning by blocks: the number of layers with parameters inside the last `n` blocks that have
  // parameters, i.e. the `unfreeze_last` count that unfreezes exactly those blocks (layers are in block order).
  // Throws tlc::Error when the backbone has no blocks or fewer than n blocks with parameters.
  int layers_in_last_blocks(int n) const;
  std::vector<at::Tensor> unfreeze_last_blocks(int n) { return unfreeze_last(layers_in_last_blocks(n)); }
  std::vector<at::Tensor> trainable_parameters() const;
  bool any_trainable() const;
  int64_t layers_with_parameters() const;

  // A backbone with blocks (every family that export_backbone.py writes, and the older flat `body` files) can
  // run as prefix + suffix, split before block `k`; others (a traced EfficientNet-Lite0 from before the block
  // layout) cannot, and these return -1 / throw.
  // first_trainable_child(): the index of the first block holding a trainable parameter.
  int64_t first_trainable_child() const;
  // Output shape of each block for a [1,3,size,size] input, keyed by block name (BlockInfo::name); between
  // blocks a tensor need not be NCHW (Swin's stages are NHWC, ViT's are tokens); empty without blocks.
  std::vector<std::pair<std::string, std::vector<int64_t>>> layer_output_shapes(int64_t size);
  int64_t sequential_length() const;  // the number of blocks, -1 without
  at::Tensor forward_range(const at::Tensor& x, int64_t begin, int64_t end);  // blocks [begin, end)
  // The frozen prefix, blocks [0, k), for the prefix cache while fine-tuning: on the engine when the chosen
  // engine is a compiled one and nothing in the prefix trains (one conversion per k), else forward_range.
  // Float32 NCHW input, as forward_range takes.
  at::Tensor forward_prefix(const at::Tensor& x, int64_t k);

  void to(const c10::Device& device);

  // The engine of the frozen passes (feature extraction, the first pass, evaluation, prediction; tlc/engine.h).
  // request_engine() decides it at once (choose_engine: a bad or impossible --engine/--precision throws
  // tlc::Error now) and sets the TF32 switches; the engine itself is built by prepare_engine() or the first
  // frozen forward (a compiled engine converts the module then, once per distinct backbone). When a compiled
  // engine cannot be made, TorchScript at the chosen precision runs instead and engine_line() says why.
  // Passes that train backbone parameters always run the module itself in float32; an engine takes the new
  // weights before its next use. Without a request: the module itself, in float32.
  void request_engine(const EngineRequest& req, int64_t image_size, int threads = 0);
  const std::string& prepare_engine() const;  // builds it when needed; returns engine_line()
  const std::string& engine_line() const { return engine_line_; }  // "engine: openvino 2026.4.1 fp32 (auto: ...)"
  std::string engine_status() const { return engine_ ? engine_->status() : ""; }  // FrozenEngine::status()
  const EngineChoice& engine_choice() const { return choice_; }
  // --precision int8 calibrates the engine's activation ranges on images like the ones it will see: normalized
  // float32 NCHW at the engine's size (tlc/calibration.h makes them), set before the engine is built; `what`
  // goes into the engine line ("128 training images"). needs_calibration(): int8 was chosen and none are set.
  void set_calibration(const at::Tensor& normalized, const std::string& what);
  bool needs_calibration() const { return choice_.precision == "int8" && !calibration_.defined(); }
  std::string engine_name() const;  // what runs the frozen passes now ("torchscript fp32" before any request)
  // The input the engine takes (prepares it): dtype and channels-last (the normalize kernel writes it).
  at::ScalarType frozen_dtype() const;
  bool frozen_channels_last() const;

 private:
  torch::jit::Module module_;
  BackboneInfo info_;
  EngineChoice choice_;
  int64_t engine_size_ = 0;
  int engine_threads_ = 0;
  // Built on first use, also from const accessors: the engine is a cache of how to run module_.
  mutable std::shared_ptr<FrozenEngine> engine_;
  // The engine that runs the frozen backbone (built on first use), or nullptr while parameters train or when the
  // module itself runs.
  FrozenEngine* frozen_engine() const;
  mutable std::string engine_line_;
  std::string prefix_note_;  // a prefix engine that could not be made, before engine_line_ exists
  at::Tensor calibration_;   // int8's calibration images
  std::string calibration_what_;
  std::map<int64_t, std::shared_ptr<FrozenEngine>> prefix_engines_;  // by k; null: it could not be made
  void build_engine() const;
  // module_'s parameter tensors, gathered once per module object (params_of_, held so that its address cannot
  // be reused): walking a TorchScript module's parameters costs about 0.13 ms for EfficientNet-Lite0 or
  // ResNet-50, and every frozen pass asks whether anything trains. requires_grad is read from the tensors
  // themselves, so flags set through module() count; a parameter replaced by another tensor (setattr) would
  // not be seen, and nothing in tlc does that. Filled when the backbone is made, so that const readers on
  // several threads only read it.
  mutable c10::intrusive_ptr<c10::ivalue::Object> params_of_;
  mutable std::vector<at::Tensor> params_;
  const std::vector<at::Tensor>& parameter_tensors() const;
};

std::string module_type_name(const torch::jit::Module& m);

// Blocks [begin, end) of a backbone module (its `blocks`/`body` Sequential, or itself when it is one), as
// Backbone::forward_range runs them; the whole forward for a module without blocks.
at::Tensor forward_blocks(torch::jit::Module module, const at::Tensor& x, int64_t begin, int64_t end);

}  // namespace tlc
