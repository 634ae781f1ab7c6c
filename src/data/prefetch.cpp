#include "tlc/prefetch.h"

#include <ATen/ATen.h>

#include "tlc/error.h"

namespace tlc {

namespace {
// Pinned memory needs the CUDA runtime; a CPU-only build of Torch (or no GPU) makes ordinary batches.
bool can_pin(const c10::Device& device) { return device.is_cuda() && at::hasCUDA(); }
}  // namespace

Prefetcher::Prefetcher(int64_t count, Produce produce, c10::Device device, int depth)
    : count_(count), produce_(std::move(produce)), device_(device), pinned_(can_pin(device)), depth_(std::max(1, depth)) {
  if (count_ > 0) worker_ = std::thread([this] { work(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Prefetcher::work() {
  for (int64_t k = 0; k < count_; ++k) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || static_cast<int>(ready_.size()) < depth_; });
      if (stop_) return;
    }
    at::Tensor t;
    try {
      t = produce_(k, pinned_);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      failed_ = true;
      cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    ready_.push_back(std::move(t));
    cv_.notify_all();
  }
}

at::Tensor Prefetcher::next() {
  if (taken_ >= count_)
    throw Error("prefetcher: batch " + std::to_string(taken_) + " asked for, but there are only " +
                std::to_string(count_));
  at::Tensor t;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !ready_.empty() || failed_; });
    if (ready_.empty()) std::rethrow_exception(error_);  // batches before the failure were handed out
    t = std::move(ready_.front());
    ready_.pop_front();
  }
  cv_.notify_all();
  ++taken_;
  if (device_.is_cpu()) return t;
  // From pinned memory this copy is asynchronous on the current stream; the pinned block is not reused
  // before the copy is done (Torch's host allocator records the copy).
  return t.to(device_, /*non_blocking=*/pinned_);
}

}  // namespace tlc
