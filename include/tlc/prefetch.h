#pragma once
// A prefetch queue for batches: a background thread makes batch k+1, k+2, ... (decoding on CPU threads)
// while the caller works on batch k. When the batches go to a CUDA device they are made in pinned host
// memory, and next() starts their copy to the device without waiting for it (non_blocking on the current
// stream), so the host goes on decoding while the copy and the GPU work run.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tlc/image_set.h"

namespace tlc {

class Prefetcher {
 public:
  // produce(k, pinned) makes batch k (k = 0 .. count-1, in order) as a CPU tensor, in pinned memory when
  // `pinned` is true. At most `depth` finished batches wait for the caller.
  using Produce = std::function<at::Tensor(int64_t k, bool pinned)>;
  Prefetcher(int64_t count, Produce produce, c10::Device device, int depth = 2);
  ~Prefetcher();  // stops the worker (it finishes the batch it is making) and waits for it
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next batch, on the device. Rethrows what produce threw for it. Throws tlc::Error past the end.
  at::Tensor next();
  int64_t count() const { return count_; }

 private:
  void work();

  const int64_t count_;
  Produce produce_;
  const c10::Device device_;
  const bool pinned_;
  const int depth_;
  int64_t taken_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<at::Tensor> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  bool failed_ = false;
  std::thread worker_;
};

// [0, n) cut into consecutive index lists of at most batch_size.
std::vector<std::vector<int64_t>> batches_in_order(int64_t n, int64_t batch_size);

// The pixels of `set` for each index list of `plan`, decoded ahead of use and sent to `device`. The set must
// outlive the prefetcher.
std::unique_ptr<Prefetcher> prefetch_batches(const ImageSet& set, std::vector<std::vector<int64_t>> plan,
                                             c10::Device device);

// Image files decoded ahead, batch_size at a time in order: batch k is uint8 [m,S,S,3] for paths
// [k*batch_size, k*batch_size+m). status[i] (sized like paths) says how file i went; it is written once the
// batch holding i has been handed out by next(). A file that fails leaves its rows unspecified. With `gpu`
// (device is CUDA) the batches are decoded by it on the GPU; it must outlive the prefetcher.
std::unique_ptr<Prefetcher> prefetch_files(const std::vector<std::string>& paths, int64_t batch_size,
                                           const DecodeOptions& opt, int threads, c10::Device device,
                                           std::vector<DecodeStatus>& status, GpuDecoder* gpu = nullptr);

}  // namespace tlc
