#include "tlc/prefetch.h"

#include <ATen/ATen.h>

#include "tlc/error.h"
#include "tlc/gpu_decode.h"
#include "tlc/util.h"

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

std::vector<std::vector<int64_t>> batches_in_order(int64_t n, int64_t batch_size) {
  std::vector<std::vector<int64_t>> plan;
  for (int64_t b0 = 0; b0 < n; b0 += batch_size) {
    plan.emplace_back();
    for (int64_t i = b0; i < std::min(n, b0 + batch_size); ++i) plan.back().push_back(i);
  }
  return plan;
}

std::unique_ptr<Prefetcher> prefetch_batches(const ImageSet& set, std::vector<std::vector<int64_t>> plan,
                                             c10::Device device) {
  auto shared = std::make_shared<std::vector<std::vector<int64_t>>>(std::move(plan));
  const auto count = static_cast<int64_t>(shared->size());
  return std::make_unique<Prefetcher>(
      count, [&set, shared](int64_t k, bool pinned) { return set.batch((*shared)[static_cast<size_t>(k)], pinned); },
      device);
}

std::unique_ptr<Prefetcher> prefetch_files(const std::vector<std::string>& paths, int64_t batch_size,
                                           const DecodeOptions& opt, int threads, c10::Device device,
                                           std::vector<DecodeStatus>& status, GpuDecoder* gpu) {
  status.assign(paths.size(), DecodeStatus{});
  const auto bs = static_cast<size_t>(std::max<int64_t>(1, batch_size));
  const auto count = static_cast<int64_t>((paths.size() + bs - 1) / bs);
  const int64_t per = static_cast<int64_t>(opt.size) * opt.size * 3;
  return std::make_unique<Prefetcher>(
      count,
      [&paths, &status, bs, opt, threads, per, gpu](int64_t k, bool pinned) {
        const size_t b0 = static_cast<size_t>(k) * bs, b1 = std::min(paths.size(), b0 + bs);
        if (gpu) return gpu->decode_files(paths.data() + b0, b1 - b0, opt, status.data() + b0, threads);
        at::Tensor pix = at::empty({static_cast<int64_t>(b1 - b0), opt.size, opt.size, 3},
                                   at::TensorOptions().dtype(at::kByte).pinned_memory(pinned));
        parallel_for(b1 - b0, threads, [&](size_t j) {
          status[b0 + j] = load_resized(paths[b0 + j], pix.data_ptr<uint8_t>() + static_cast<int64_t>(j) * per, opt);
        });
        return pix;
      },
      device);
}

}  // namespace tlc
