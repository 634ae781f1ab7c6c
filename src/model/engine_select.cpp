// A backbone's engine for its frozen passes: chosen at once (choose_engine), built on first use, with the
// TorchScript fallback and the one log line that says what runs and why.
#include <ATen/Parallel.h>

#include <cstdlib>

#include "tlc/backbone.h"
#include "tlc/device.h"
#include "tlc/error.h"

namespace tlc {

namespace {
at::ScalarType dtype_of(const std::string& precision) { return precision == "bf16" ? at::kBFloat16 : at::kFloat; }

}  // namespace

bool cuda_graphs_enabled() {
#ifdef TLC_WITH_CUDA
  // Opt-in until a GPU has run them (scripts/gpu_check.sh's "graphs" stage measures both ways).
  const char* v = std::getenv("TLC_CUDA_GRAPHS");
  return v && std::string(v) == "1";
#else
  return false;
#endif
}

#ifndef TLC_WITH_CUDA
std::shared_ptr<FrozenEngine> with_cuda_graphs(std::shared_ptr<FrozenEngine> inner) { return inner; }
#endif

void Backbone::request_engine(const EngineRequest& req, int64_t image_size, int threads) {
  choice_ = choose_engine(req);
  if (image_size != engine_size_) {  // calibration images are of one size: another engine needs others
    calibration_ = at::Tensor();
    calibration_what_.clear();
  }
  // TF32 is a process-wide CUDA switch: fp32 turns off the TF32 PyTorch lets cuDNN use by default.
  if (req.cuda) allow_tf32(choice_.precision == "tf32");
  engine_size_ = image_size;
  engine_threads_ = threads;
  engine_.reset();
  engine_line_.clear();
  prefix_note_.clear();
  prefix_engines_.clear();
}

void Backbone::set_calibration(const at::Tensor& normalized, const std::string& what) {
  if (normalized.dim() != 4 || normalized.size(0) == 0 || normalized.size(1) != 3)
    throw Error("the int8 calibration images must be a non-empty [M,3,S,S] batch");
  if (engine_size_ > 0 && (normalized.size(2) != engine_size_ || normalized.size(3) != engine_size_))
    throw Error("the int8 calibration images are " + std::to_string(normalized.size(2)) + "x" +
                std::to_string(normalized.size(3)) + ", and the engine takes " + std::to_string(engine_size_) + "x" +
                std::to_string(engine_size_) + " (decode them at the model's image size)");
  calibration_ = normalized.to(at::kCPU, at::kFloat).contiguous();
  calibration_what_ = what;
  if (choice_.precision == "int8") {  // a new calibration makes a new engine
    engine_.reset();
    engine_line_.clear();
  }
}

const std::string& Backbone::prepare_engine() const {
  if (!engine_ && !choice_.engine.empty()) build_engine();  // requested, not built yet
  if (engine_line_.empty()) engine_line_ = "engine: torchscript fp32 (the module itself; no engine was requested)";
  return engine_line_;
}

void Backbone::build_engine() const {
  std::string fallback;
  if (choice_.engine == "openvino") {
    const int threads = engine_threads_ > 0 ? engine_threads_ : at::get_num_threads();
    try {
      engine_ = make_openvino_engine(module_, engine_size_, choice_.precision, threads, -1,
                                     choice_.precision == "int8" ? calibration_ : at::Tensor());
    } catch (const Error& e) {
      fallback = e.what();
    }
  }
  if (!engine_) {
    engine_ = make_torchscript_engine(module_, dtype_of(choice_.precision));
    const auto& params = parameter_tensors();
    if (!params.empty() && params.front().is_cuda() && cuda_graphs_enabled()) engine_ = with_cuda_graphs(engine_);
  }
  engine_line_ = "engine: " + engine_->name() + " (" + choice_.reason + ")";
  if (choice_.precision == "int8" && fallback.empty()) engine_line_ += "; calibrated on " + calibration_what_;
  if (!fallback.empty()) engine_line_ += "; OpenVINO was chosen but could not be made, so TorchScript runs: " + fallback;
  engine_line_ += prefix_note_;
}

at::Tensor Backbone::forward_prefix(const at::Tensor& x, int64_t k) {
  if (k <= 0) return x;  // an empty prefix: nothing to run, nothing to convert
  // int8 prefixes are not made: the prefix feeds layers that train, which want the float activations.
  if (choice_.engine != "openvino" || choice_.precision == "int8" || first_trainable_child() < k || !x.device().is_cpu())
    return forward_range(x, 0, k);
  auto it = prefix_engines_.find(k);
  if (it == prefix_engines_.end()) {
    std::shared_ptr<FrozenEngine> e;
    try {
      e = make_openvino_engine(module_, engine_size_, choice_.precision,
                               engine_threads_ > 0 ? engine_threads_ : at::get_num_threads(), k);
    } catch (const Error& err) {
      // Said in the engine line, without building the whole backbone's engine for it (parameters train now).
      const std::string note = "; the frozen prefix (blocks 0.." + std::to_string(k - 1) + ") runs on TorchScript: " + err.what();
      (engine_line_.empty() ? prefix_note_ : engine_line_) += note;
    }
    it = prefix_engines_.emplace(k, std::move(e)).first;
  }
  if (!it->second) return forward_range(x, 0, k);
  torch::NoGradGuard ng;
  return it->second->forward(x);
}

std::string Backbone::engine_name() const {
  prepare_engine();
  return engine_ ? engine_->name() : "torchscript fp32";
}

at::ScalarType Backbone::frozen_dtype() const {
  prepare_engine();
  return engine_ ? engine_->input_dtype() : at::kFloat;
}

bool Backbone::frozen_channels_last() const {
  prepare_engine();
  return engine_ && engine_->channels_last();
}

}  // namespace tlc
