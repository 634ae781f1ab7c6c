#include "batcher.h"

#include <algorithm>

namespace tlc::serve {

void Job::fail(int status, const std::string& error) {
  JobResult r;
  r.status = status;
  r.error = error;
  result.set_value(std::move(r));
}

BatchQueue::BatchQueue(int64_t max_batch, std::chrono::microseconds max_queue_delay, int64_t max_queued_images)
    : max_batch_(std::max<int64_t>(1, max_batch)),
      delay_(std::max(max_queue_delay, std::chrono::microseconds(0))),
      // At least one full batch must fit, or a request of max_batch images could never be taken.
      max_queued_(std::max(max_queued_images, max_batch_)) {}

BatchQueue::Admit BatchQueue::push(const JobPtr& job) {
  const int64_t n = job->images();
  if (n > max_batch_ || n < 1) return Admit::too_large;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (closed_) return Admit::closed;
    if (queued_ + n > max_queued_) return Admit::full;
    job->enqueued = Clock::now();
    jobs_.push_back(job);
    queued_ += n;
  }
  cv_.notify_all();
  return Admit::ok;
}

void BatchQueue::drop_expired_locked(Clock::time_point now) {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if ((*it)->deadline <= now) {
      queued_ -= (*it)->images();
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - (*it)->enqueued).count();
      (*it)->fail(504, "the request timed out after waiting " + std::to_string(waited) +
                           " ms in the model's queue (--request-timeout-ms)");
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<JobPtr> BatchQueue::next_batch() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    const Clock::time_point now = Clock::now();
    drop_expired_locked(now);
    if (jobs_.empty()) {
      if (closed_) return {};
      cv_.wait(lk);
      continue;
    }
    const Clock::time_point due = jobs_.front()->enqueued + delay_;
    if (closed_ || queued_ >= max_batch_ || now >= due) break;
    // Sleep until the batch is due or a waiting request's deadline passes; push() and close() wake us early.
    Clock::time_point wake = due;
    for (const JobPtr& j : jobs_) wake = std::min(wake, j->deadline);
    cv_.wait_until(lk, wake);
  }
  std::vector<JobPtr> batch;
  int64_t n = 0;
  while (!jobs_.empty() && n + jobs_.front()->images() <= max_batch_) {
    n += jobs_.front()->images();
    batch.push_back(std::move(jobs_.front()));
    jobs_.pop_front();
  }
  queued_ -= n;
  return batch;
}

void BatchQueue::close() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

int64_t BatchQueue::queued_images() const {
  std::lock_guard<std::mutex> lk(mu_);
  return queued_;
}

}  // namespace tlc::serve
