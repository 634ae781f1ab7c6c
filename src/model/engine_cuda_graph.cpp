// CUDA graphs around the frozen-pass engine on a CUDA device (issue 20, the compiled path on CUDA): a batch
// shape seen kWarmup times is captured once into a CUDA graph and replayed from then on, so one launch replaces
// the backbone's hundreds of kernel launches (what dominates small batches: `tlc predict` of a few images,
// `tlc serve`, batch-1 bench). Only shapes that repeat are captured (a first pass's full batches, bench's),
// at most kMaxGraphs of them, each with its own memory pool; the rest run eagerly. A capture that fails
// turns graphs off for this engine, says why in name() (the engine line), and runs eagerly: same results.
// Built only with CUDA (TLC_WITH_CUDA); engine_select.cpp wraps the TorchScript engine on CUDA in it when
// TLC_CUDA_GRAPHS=1 (opt-in until scripts/gpu_check.sh has measured it on a GPU).
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <map>
#include <mutex>
#include <tuple>

#include "tlc/engine.h"

namespace tlc {
namespace {

constexpr int kWarmup = 3;     // eager runs of a shape before its capture (the TorchScript executor optimizes on them)
constexpr size_t kMaxGraphs = 2;

class CudaGraphEngine final : public FrozenEngine {
 public:
  explicit CudaGraphEngine(std::shared_ptr<FrozenEngine> inner) : inner_(std::move(inner)) {}

  at::Tensor forward(const at::Tensor& x) override { return run(x, false); }
  at::Tensor pooled(const at::Tensor& x) override { return run(x, true); }
  at::ScalarType input_dtype() const override { return inner_->input_dtype(); }
  bool channels_last() const override { return inner_->channels_last(); }
  void weights_changed() override {
    std::lock_guard<std::mutex> lock(mu_);
    inner_->weights_changed();  // the inner engine takes them at its next eager call: capture again after it
    reset();
  }
  void to(const c10::Device& device) override {
    std::lock_guard<std::mutex> lock(mu_);
    inner_->to(device);
    reset();
  }
  std::string name() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return inner_->name() + (off_.empty() ? " + CUDA graphs" : " (CUDA graphs off: " + off_ + ")");
  }

 private:
  // Shape, dtype, layout, and whether the graph pools (pooled) or returns the map (forward).
  using Key = std::tuple<std::vector<int64_t>, at::ScalarType, bool, bool>;
  struct Captured {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    at::Tensor in, out;  // the graph's own input and output buffers
  };

  std::shared_ptr<FrozenEngine> inner_;
  mutable std::mutex mu_;
  std::map<Key, int> seen_;
  std::map<Key, Captured> graphs_;
  std::string off_;  // why graphs are off ("" while on)

  void reset() {
    graphs_.clear();
    seen_.clear();
  }

  at::Tensor eager(const at::Tensor& x, bool pooled) { return pooled ? inner_->pooled(x) : inner_->forward(x); }

  at::Tensor run(const at::Tensor& x, bool pooled) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!x.is_cuda() || !off_.empty()) return eager(x, pooled);
    const Key key{x.sizes().vec(), x.scalar_type(), x.is_contiguous(at::MemoryFormat::ChannelsLast), pooled};
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      if (++seen_[key] <= kWarmup || graphs_.size() >= kMaxGraphs) return eager(x, pooled);
      it = capture(key, x, pooled);
      if (it == graphs_.end()) return eager(x, pooled);
    }
    torch::NoGradGuard ng;
    it->second.in.copy_(x);
    it->second.graph->replay();
    return it->second.out.clone();  // the next replay overwrites the graph's buffer
  }

  std::map<Key, Captured>::iterator capture(const Key& key, const at::Tensor& x, bool pooled) {
    torch::NoGradGuard ng;
    c10::cuda::CUDAGuard guard(x.device());
    Captured c;
    c.in = at::empty_like(x);  // keeps x's layout
    c.in.copy_(x);
    c.graph = std::make_unique<at::cuda::CUDAGraph>();
    const auto current = c10::cuda::getCurrentCUDAStream(x.device().index());
    const auto side = c10::cuda::getStreamFromPool(false, x.device().index());
    // The capture runs on a side stream (capturing on the default stream is not allowed), after what is queued.
    at::cuda::CUDAEvent queued;
    queued.record(current);
    queued.block(side);
    try {
      c10::cuda::CUDAStreamGuard on_side(side);
      c.graph->capture_begin();
      try {
        c.out = eager(c.in, pooled);
      } catch (...) {
        try {
          c.graph->capture_end();  // leaves capture mode; throws for the invalidated capture
        } catch (...) {
        }
        throw;
      }
      c.graph->capture_end();
    } catch (const std::exception& e) {
      std::string why = e.what();
      off_ = why.substr(0, why.find('\n')).substr(0, 200);
      (void)cudaGetLastError();  // a failed capture's error is not sticky: clear it
      return graphs_.end();
    }
    at::cuda::CUDAEvent captured;
    captured.record(side);
    captured.block(current);
    return graphs_.emplace(key, std::move(c)).first;
  }
};

}  // namespace

std::shared_ptr<FrozenEngine> with_cuda_graphs(std::shared_ptr<FrozenEngine> inner) {
  return std::make_shared<CudaGraphEngine>(std::move(inner));
}

}  // namespace tlc
