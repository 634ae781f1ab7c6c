#pragma once
// One served model: its ModelFile, its batching queue, and the engine thread that runs the queue's batches
// through ModelFile::predict_proba (the same call `tlc predict` makes). Only the engine thread touches the
// model once serving starts, so the model needs no lock.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <thread>

#include "batcher.h"
#include "tlc/image_io.h"
#include "tlc/model_file.h"

namespace tlc::serve {

// Counters of one model, read by /metrics (Triton's names with tlc_ instead of nv_). Durations are
// cumulative microseconds, so a rate over two scrapes gives the mean.
struct ModelStats {
  std::atomic<uint64_t> request_success{0}, request_failure{0};
  std::atomic<uint64_t> inference_count{0}, exec_count{0};  // images inferred; batches executed
  std::atomic<uint64_t> request_us{0}, queue_us{0}, compute_us{0};
  std::atomic<int64_t> in_flight{0};
};

struct RunnerOptions {
  int64_t max_batch = 8;
  std::chrono::microseconds max_queue_delay{2000};
  int64_t max_queued_images = 64;
  // Lower than tlc predict's 100 M: each of --http-threads requests may decode one image at a time, and a
  // 25 MP PNG (a 6000x4000 photo) is already 75 MB of pixels before resizing.
  int64_t max_pixels = 25'000'000;
};

class ModelRunner {
 public:
  // `model` is already on its device with its engine chosen.
  ModelRunner(std::string name, ModelFile model, const RunnerOptions& options);
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  // Runs every batch size from 1 to max_batch once (an engine may compile or allocate per shape), then starts
  // the engine thread; ready() turns true after both.
  void warm_up_and_start();
  bool ready() const { return ready_.load(); }

  // Queues uint8 [n,S,S,3] pixels (n <= max_batch). On BatchQueue::Admit::ok, *result will hold the answer.
  BatchQueue::Admit submit(at::Tensor pixels, Clock::time_point deadline, std::future<JobResult>* result);

  // Stops taking requests, lets the engine thread finish what is queued, and joins it.
  void drain();

  const std::string& name() const { return name_; }
  const ModelMeta& meta() const { return model_.meta(); }
  const DecodeOptions& decode_options() const { return decode_; }
  int64_t max_batch() const { return queue_.max_batch(); }
  int64_t queued_images() const { return queue_.queued_images(); }
  ModelStats& stats() { return stats_; }

 private:
  void engine_loop();
  void run_batch(const std::vector<JobPtr>& batch);
  std::string name_;
  ModelFile model_;
  DecodeOptions decode_;
  BatchQueue queue_;
  ModelStats stats_;
  std::thread engine_;
  std::atomic<bool> ready_{false};
};

}  // namespace tlc::serve
