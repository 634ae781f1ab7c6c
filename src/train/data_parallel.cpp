// Data parallelism inside the trainer: which part of a set or of a global batch this rank works on, the
// training step whose gradients are averaged over the ranks, and the first pass's features gathered from the
// ranks' shards. In a world of one every function here reduces to the single-process path.
#include <torch/nn/functional/loss.h>

#include <cstdlib>

#include "tlc/dist.h"
#include "tlc/interrupt.h"
#include "trainer_internal.h"

namespace tlc {

namespace detail {

std::pair<int64_t, int64_t> shard_range(int64_t n, const Comm& comm) {
  const int64_t r = comm.rank(), w = comm.world_size();
  return {n * r / w, n * (r + 1) / w};
}

std::pair<double, int64_t> sum_over_ranks(double loss_sum, int64_t correct) {
  Comm& comm = world();
  if (comm.world_size() == 1) return {loss_sum, correct};
  at::Tensor t = at::tensor({loss_sum, static_cast<double>(correct)}, at::kDouble);
  comm.allreduce_sum(t);
  return {t[0].item<double>(), static_cast<int64_t>(std::llround(t[1].item<double>()))};
}

int64_t gradient_bucket_bytes() {
  // Overlap pays where communication has its own engine (NCCL on GPUs, as PyTorch's DDP does); with Gloo on a
  // few CPU cores its threads took cores from backward and epochs got slower (docs/BENCHMARKS.md, Scale-out).
  const char* v = std::getenv("TLC_GRAD_BUCKET_MB");
  const double mb = v && *v ? std::atof(v) : (world().backend() == "nccl" ? 4.0 : 0.0);
  return static_cast<int64_t>(mb * 1024 * 1024);
}

GradientBuckets::GradientBuckets(std::vector<at::Tensor> params, size_t head_params, Comm& comm, int64_t bucket_bytes)
    : params_(std::move(params)), comm_(comm), bucket_of_(params_.size()), grads_(params_.size()) {
  // Backward produces the head's gradients first (it runs last), then the backbone's from the last layer back.
  std::vector<size_t> order;
  for (size_t i = 0; i < std::min(head_params, params_.size()); ++i) order.push_back(i);
  for (size_t i = params_.size(); i > head_params; --i) order.push_back(i - 1);
  int64_t bytes = 0;
  for (size_t i : order) {
    const int64_t b = params_[i].numel() * static_cast<int64_t>(params_[i].element_size());
    if (buckets_.empty() || (bucket_bytes > 0 && bytes > 0 && bytes + b > bucket_bytes)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().members.push_back(i);
    bucket_of_[i] = buckets_.size() - 1;
    bytes += b;
  }
  for (size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(params_[i].register_hook([this, i](const at::Tensor& g) { arrived(i, g); }));
}

GradientBuckets::~GradientBuckets() {
  for (size_t i = 0; i < params_.size(); ++i) params_[i].remove_hook(hooks_[i]);
}

void GradientBuckets::begin_step() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& b : buckets_) {
    b.arrived = 0;
    b.flat = at::Tensor();
    b.pending = {};
  }
  for (auto& g : grads_) g = at::Tensor();
  next_launch_ = 0;
}

void GradientBuckets::arrived(size_t param, const at::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mu_);
  grads_[param] = grad.detach();
  ++buckets_[bucket_of_[param]].arrived;
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].arrived == buckets_[next_launch_].members.size())
    launch(next_launch_++);
}

void GradientBuckets::launch(size_t b) {
  Bucket& bucket = buckets_[b];
  std::vector<at::Tensor> parts;
  for (size_t i : bucket.members)
    parts.push_back(grads_[i].defined() ? grads_[i].reshape(-1) : at::zeros({params_[i].numel()}, params_[i].options()));
  bucket.flat = at::cat(parts);
  bucket.pending = comm_.allreduce_sum_async(bucket.flat);
}

void GradientBuckets::finish_step() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (next_launch_ < buckets_.size()) launch(next_launch_++);
  }
  for (auto& bucket : buckets_) {
    bucket.pending.wait();
    int64_t off = 0;
    for (size_t i : bucket.members) {
      at::Tensor& p = params_[i];
      at::Tensor g = bucket.flat.slice(0, off, off + p.numel()).view_as(p);
      if (p.grad().defined())
        p.mutable_grad().copy_(g);
      else
        p.mutable_grad() = g.clone();
      off += p.numel();
    }
  }
}

}  // namespace detail

TransferClassifier::SyncedStep TransferClassifier::step_data_parallel(const std::function<at::Tensor()>& features,
                                                                      const at::Tensor& labels, const at::Tensor& weights,
                                                                      double denominator,
                                                                      torch::optim::Optimizer& optim,
                                                                      detail::GradientBuckets& grads) {
  Comm& comm = world();
  head_->train();
  optim.zero_grad();
  at::Tensor loss;
  float local_loss = 0, local_correct = 0;
  if (labels.numel() > 0) {  // a rank whose slice of a short last batch is empty adds zero gradients
    at::Tensor logits = head_->forward(features());
    // The global batch's (weighted) mean: this slice's (weighted) sum over the whole batch's count or summed
    // weights, so that the sum over the ranks is the single-process gradient.
    namespace F = torch::nn::functional;
    if (weights.defined())
      loss = detail::weighted_cross_entropy(logits, labels, weights, at::scalar_tensor(denominator, logits.options()));
    else
      loss = F::cross_entropy(logits, labels, F::CrossEntropyFuncOptions().reduction(torch::kSum)) / denominator;
    local_loss = loss.item<float>();
    local_correct = static_cast<float>(logits.argmax(1).eq(labels).sum().item<int64_t>());
  }
  // The step's loss, correct count and the ranks' interrupt requests (so that all ranks stop after the same
  // step) travel first; the gradient buckets follow while backward runs.
  at::Tensor stats = at::tensor({local_loss, local_correct, interrupt_requested() ? 1.0f : 0.0f});
  Comm::Pending stats_sum = comm.allreduce_sum_async(stats);
  grads.begin_step();
  if (loss.defined()) loss.backward();
  grads.finish_step();
  stats_sum.wait();
  optim.step();
  const bool stop = stats[2].item<float>() > 0;
  if (stop) request_interrupt();
  return {static_cast<double>(stats[0].item<float>()), static_cast<int64_t>(std::llround(stats[1].item<float>())), stop};
}

void TransferClassifier::gather_first_pass(const std::string& role) {
  Comm& comm = world();
  auto it = first_pass_.find(role);
  if (comm.world_size() == 1 || it == first_pass_.end()) return;
  const int64_t channels = backbone_.info().output_channels;
  auto gathered = [&](std::vector<at::Tensor>& parts) {
    at::Tensor mine = parts.empty() ? at::zeros({0, channels}, at::TensorOptions().device(device_)) : at::cat(parts);
    parts = {comm.allgather_rows(mine)};
  };
  gathered(it->second.plain);
  if (aug_.flip_only() && role == "train") gathered(it->second.flipped);
}

}  // namespace tlc
