#pragma once
// The dynamic-batching queue of one served model: requests wait here until the engine thread takes them as
// one batch. Bounded (in images), with Triton's meaning for the two knobs:
//   max_batch:      the most images one engine call takes; a request is never split across batches, and a
//                   request with more images than this is refused (Triton: "batch-size must be <=
//                   max_batch_size");
//   max_queue_delay: how long the oldest waiting request may be held back for others to join its batch
//                   (Triton's max_queue_delay_microseconds); 0 runs whatever is queued at once.
// Each request also carries its deadline: one still queued past it is answered with a timeout and never
// reaches the engine. The queue knows nothing of HTTP or of models, so it is tested alone.
#include <ATen/ATen.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tlc::serve {

using Clock = std::chrono::steady_clock;

// What a request gets back: probabilities [n,K] (CPU, float), or an error with the HTTP status that fits it
// (504: its deadline passed; 503: the server stopped before running it; 500: the engine failed).
struct JobResult {
  at::Tensor probabilities;
  int status = 200;
  std::string error;
  int64_t queue_us = 0, compute_us = 0;
};

struct Job {
  at::Tensor pixels;  // uint8 [n,S,S,3] RGB, already at the model's size
  Clock::time_point enqueued{}, deadline = Clock::time_point::max();
  std::promise<JobResult> result;
  int64_t images() const { return pixels.defined() ? pixels.size(0) : 0; }
  void fail(int status, const std::string& error);
};
using JobPtr = std::shared_ptr<Job>;

class BatchQueue {
 public:
  BatchQueue(int64_t max_batch, std::chrono::microseconds max_queue_delay, int64_t max_queued_images);

  enum class Admit { ok, full, too_large, closed };
  // Never blocks. `ok`: the job is queued and its result will be set. Otherwise the job was not taken (its
  // promise is untouched): `full` (503 with Retry-After), `too_large` (more than max_batch images; 400),
  // `closed` (the server is stopping; 503).
  Admit push(const JobPtr& job);

  // Blocks until a batch is due: max_batch images are waiting, or the oldest waiting request has waited
  // max_queue_delay, or the queue was closed (then whatever is left goes at once, so that a drain serves
  // every accepted request). Jobs past their deadline are failed with 504 on the way. Returns the batch's
  // jobs in arrival order; empty only when the queue is closed and empty (the engine thread's cue to end).
  std::vector<JobPtr> next_batch();

  // Stops taking jobs; those already queued are still handed out by next_batch.
  void close();
  int64_t queued_images() const;
  int64_t max_batch() const { return max_batch_; }

 private:
  const int64_t max_batch_;
  const std::chrono::microseconds delay_;
  const int64_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<JobPtr> jobs_;
  int64_t queued_ = 0;
  bool closed_ = false;
  void drop_expired_locked(Clock::time_point now);
};

}  // namespace tlc::serve
