#include "model_runner.h"

#include <c10/util/Exception.h>

#include <exception>
#include <utility>

#include "tlc/predict.h"

namespace tlc::serve {
namespace {

int64_t micros(Clock::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); }

}  // namespace

ModelRunner::ModelRunner(std::string name, ModelFile model, const RunnerOptions& options)
    : name_(std::move(name)),
      model_(std::move(model)),
      decode_(predict_decode_options(model_.meta(), options.max_pixels)),
      queue_(options.max_batch, options.max_queue_delay, options.max_queued_images) {}

ModelRunner::~ModelRunner() { drain(); }

void ModelRunner::warm_up_and_start() {
  const int64_t s = model_.meta().image_size;
  for (int64_t b = 1; b <= queue_.max_batch(); ++b) model_.predict_proba(at::zeros({b, s, s, 3}, at::kByte));
  engine_ = std::thread([this] { engine_loop(); });
  ready_ = true;
}

BatchQueue::Admit ModelRunner::submit(at::Tensor pixels, Clock::time_point deadline, std::future<JobResult>* result) {
  auto job = std::make_shared<Job>();
  job->pixels = std::move(pixels);
  job->deadline = deadline;
  *result = job->result.get_future();
  return queue_.push(job);
}

void ModelRunner::drain() {
  ready_ = false;
  queue_.close();
  if (engine_.joinable()) engine_.join();
}

void ModelRunner::engine_loop() {
  for (;;) {
    std::vector<JobPtr> batch = queue_.next_batch();
    if (batch.empty()) return;  // closed and empty
    run_batch(batch);
  }
}

void ModelRunner::run_batch(const std::vector<JobPtr>& batch) {
  const Clock::time_point start = Clock::now();
  at::Tensor probs;
  try {
    std::vector<at::Tensor> parts;
    for (const JobPtr& j : batch) parts.push_back(j->pixels);
    probs = model_.predict_proba(parts.size() == 1 ? parts[0] : at::cat(parts)).to(at::kFloat).contiguous();
  } catch (const std::exception& e) {
    const auto* c10e = dynamic_cast<const c10::Error*>(&e);
    const std::string what = c10e ? c10e->what_without_backtrace() : e.what();
    // Inputs were decoded and checked before they were queued, so this is the engine's own failure (out of
    // memory, a broken engine): every request of the batch hears it, and the server goes on.
    for (const JobPtr& j : batch) j->fail(500, "the model failed on this batch: " + what);
    return;
  }
  const Clock::time_point end = Clock::now();
  stats_.exec_count += 1;
  stats_.inference_count += static_cast<uint64_t>(probs.size(0));
  stats_.compute_us += static_cast<uint64_t>(micros(end - start));
  int64_t row = 0;
  for (const JobPtr& j : batch) {
    JobResult r;
    r.probabilities = probs.narrow(0, row, j->images()).clone();
    r.queue_us = micros(start - j->enqueued);
    r.compute_us = micros(end - start);
    stats_.queue_us += static_cast<uint64_t>(r.queue_us);
    row += j->images();
    j->result.set_value(std::move(r));
  }
}

}  // namespace tlc::serve
