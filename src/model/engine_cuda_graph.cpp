// CUDA graphs around the frozen-pass engine on a CUDA device (issue 20, the compiled path on CUDA): a small
// batch shape seen kWarmup times is captured once into a CUDA graph and replayed from then on, so one launch
// replaces the backbone's hundreds of kernel launches, which is what sets the pace of small batches (`tlc
// serve`, repeated predictions in one process, batch-1 bench). Shapes up to kMaxBatch images are captured, at
// most kMaxGraphs of them (least recently used out), each with its own memory pool; larger batches, which are
// compute-bound, run eagerly. A capture that fails ends it, undoes the allocator's bookkeeping for it, and
// turns graphs off in this process (status() says why); everything then runs eagerly, with the same results.
// Built only with CUDA (TLC_WITH_CUDA); engine_select.cpp wraps the TorchScript engine on CUDA in it when
// TLC_CUDA_GRAPHS=1 (opt-in until scripts/gpu_check.sh has measured it on a GPU).
#include <ATen/core/CachingHostAllocator.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <list>
#include <map>
#include <mutex>
#include <tuple>

#include "tlc/engine.h"

namespace tlc {
namespace {

constexpr int kWarmup = 2;       // eager runs of a shape before its capture: TorchScript profiles, then optimizes
constexpr size_t kMaxGraphs = 4;
constexpr int64_t kMaxBatch = 32;

std::mutex g_off_mu;
std::string g_off;  // why graphs are off in this process ("" while on): a failed capture is not tried again

// CUDAGraph with what it knows about how far its capture got (to clean up after a failed one).
struct Graph : at::cuda::CUDAGraph {
  bool ended() const { return capture_ended_; }
};

class CudaGraphEngine final : public FrozenEngine {
 public:
  explicit CudaGraphEngine(std::shared_ptr<FrozenEngine> inner) : inner_(std::move(inner)) {}

  at::Tensor forward(const at::Tensor& x) override { return run(x, false); }
  at::Tensor pooled(const at::Tensor& x) override { return run(x, true); }
  at::ScalarType input_dtype() const override { return inner_->input_dtype(); }
  bool channels_last() const override { return inner_->channels_last(); }
  void weights_changed() override {
    std::lock_guard<std::mutex> lock(mu_);
    inner_->weights_changed();  // the inner engine takes them at its next eager call: captures follow it
    reset();
  }
  void to(const c10::Device& device) override {
    std::lock_guard<std::mutex> lock(mu_);
    inner_->to(device);
    reset();
  }
  // Stable (the disk cache keys on it); what happened since is status()'s.
  std::string name() const override { return inner_->name() + " + CUDA graphs"; }
  std::string status() const override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string off = off_reason();
    return "CUDA graphs: " + std::to_string(captures_) + " captured, " + std::to_string(replays_) + " replays" +
           (off.empty() ? "" : "; off: " + off);
  }

 private:
  // Shape, dtype, layout, and whether the graph pools (pooled) or returns the map (forward).
  using Key = std::tuple<std::vector<int64_t>, at::ScalarType, bool, bool>;
  struct Captured {
    Key key;
    std::unique_ptr<Graph> graph;
    at::Tensor in, out;  // the graph's own input and output buffers
  };

  std::shared_ptr<FrozenEngine> inner_;
  mutable std::mutex mu_;
  std::map<Key, int> seen_;
  std::list<Captured> graphs_;  // most recently used first
  at::cuda::CUDAEvent used_;    // the last replay's output copied out: the buffers are free again after it
  int64_t captures_ = 0, replays_ = 0;

  static std::string off_reason() {
    std::lock_guard<std::mutex> lock(g_off_mu);
    return g_off;
  }

  void reset() {
    graphs_.clear();
    seen_.clear();
  }

  at::Tensor eager(const at::Tensor& x, bool pooled) { return pooled ? inner_->pooled(x) : inner_->forward(x); }

  at::Tensor run(const at::Tensor& x, bool pooled) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!x.is_cuda() || x.dim() == 0 || x.size(0) > kMaxBatch || !off_reason().empty()) return eager(x, pooled);
    const Key key{x.sizes().vec(), x.scalar_type(), x.is_contiguous(at::MemoryFormat::ChannelsLast), pooled};
    auto it = graphs_.begin();
    while (it != graphs_.end() && it->key != key) ++it;
    if (it == graphs_.end()) {
      if (++seen_[key] <= kWarmup) return eager(x, pooled);
      if (!capture(key, x, pooled)) return eager(x, pooled);
      it = graphs_.begin();
    } else {
      graphs_.splice(graphs_.begin(), graphs_, it);
      it = graphs_.begin();
    }
    torch::NoGradGuard ng;
    c10::cuda::CUDAGuard guard(x.device());
    const auto stream = c10::cuda::getCurrentCUDAStream(x.device().index());
    used_.block(stream);  // a caller on another stream: wait until the last replay's output was copied out
    it->in.copy_(x);
    it->graph->replay();
    at::Tensor y = it->out.clone();  // the next replay overwrites the graph's buffer
    used_.record(stream);
    ++replays_;
    return y;
  }

  // Captures x's shape as the most recently used graph; false (graphs off in this process) when it fails.
  bool capture(const Key& key, const at::Tensor& x, bool pooled) {
    torch::NoGradGuard ng;
    c10::cuda::CUDAGuard guard(x.device());
    const c10::DeviceIndex dev = x.device().index();
    Captured c;
    c.key = key;
    c.in = at::empty_like(x);  // keeps x's layout
    c.in.copy_(x);
    c.graph = std::make_unique<Graph>();
    const auto pool = at::cuda::graph_pool_handle();
    const auto current = c10::cuda::getCurrentCUDAStream(dev);
    const auto side = c10::cuda::getStreamFromPool(false, dev);
    // The capture runs on a side stream (capturing on the default stream is not allowed), after what is queued.
    // Thread-local mode: other threads (the prefetching decoder, another fit) keep allocating meanwhile.
    at::cuda::CUDAEvent queued;
    queued.record(current);
    queued.block(side);
    try {
      c10::cuda::CUDAStreamGuard on_side(side);
      c.graph->capture_begin(pool, cudaStreamCaptureModeThreadLocal);
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
      if (!c.graph->ended()) {
        // capture_end stopped before it could undo what capture_begin set up in the allocators: undo it here,
        // or every later allocation would keep routing through this capture's filter and its pool would leak.
        try { c10::cuda::CUDACachingAllocator::endAllocateToPool(dev, pool); } catch (...) {}
        try { c10::cuda::CUDACachingAllocator::releasePool(dev, pool); } catch (...) {}
        try { at::getHostAllocator(at::kCUDA)->end_allocate_to_pool(pool); } catch (...) {}
        try { at::getHostAllocator(at::kCUDA)->release_pool(pool); } catch (...) {}
      }
      (void)cudaGetLastError();  // a failed capture's error is not sticky: clear it
      std::string why = e.what();
      std::lock_guard<std::mutex> lock(g_off_mu);
      if (g_off.empty()) g_off = why.substr(0, why.find('\n')).substr(0, 200);
      return false;
    }
    at::cuda::CUDAEvent captured;
    captured.record(side);
    captured.block(current);
    ++captures_;
    graphs_.push_front(std::move(c));
    if (graphs_.size() > kMaxGraphs) graphs_.pop_back();
    return true;
  }
};

}  // namespace

std::shared_ptr<FrozenEngine> with_cuda_graphs(std::shared_ptr<FrozenEngine> inner) {
  return std::make_shared<CudaGraphEngine>(std::move(inner));
}

}  // namespace tlc
