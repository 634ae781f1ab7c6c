// Data parallelism inside the trainer: which part of a set or of a global batch this rank works on, the
// training step whose gradients are averaged over the ranks, and the first pass's features gathered from the
// ranks' shards. In a world of one every function here reduces to the single-process path.
#include <torch/nn/functional/loss.h>

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

}  // namespace detail

TransferClassifier::SyncedStep TransferClassifier::step_data_parallel(const std::function<at::Tensor()>& features,
                                                                      const at::Tensor& labels, double denominator,
                                                                      torch::optim::Optimizer& optim,
                                                                      const std::vector<at::Tensor>& params) {
  Comm& comm = world();
  head_->train();
  optim.zero_grad();
  double local_loss = 0;
  int64_t local_correct = 0;
  if (labels.numel() > 0) {  // a rank whose slice of a short last batch is empty adds zero gradients
    at::Tensor logits = head_->forward(features());
    auto ce = torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum);
    if (class_weights_.defined()) ce.weight(class_weights_);
    // The global batch's mean: this slice's sum over the whole batch's count (or its summed class weights),
    // so that the sum over the ranks is the single-process gradient.
    at::Tensor loss = torch::nn::functional::cross_entropy(logits, labels, ce) / denominator;
    loss.backward();
    local_loss = loss.item<double>();
    local_correct = logits.argmax(1).eq(labels).sum().item<int64_t>();
  }
  // One all-reduce per step: every gradient, then the step's loss, correct count and the ranks' interrupt
  // requests (so that all ranks stop after the same step).
  std::vector<at::Tensor> flat;
  for (const auto& p : params)
    flat.push_back(p.grad().defined() ? p.grad().reshape(-1) : at::zeros({p.numel()}, p.options()));
  flat.push_back(at::tensor({static_cast<float>(local_loss), static_cast<float>(local_correct),
                             interrupt_requested() ? 1.0f : 0.0f}).to(params.front().device()));
  at::Tensor buf = at::cat(flat);
  comm.allreduce_sum(buf);
  int64_t off = 0;
  for (const auto& p : params) {
    at::Tensor g = buf.slice(0, off, off + p.numel()).view_as(p);
    if (p.grad().defined())
      p.mutable_grad().copy_(g);
    else
      p.mutable_grad() = g.clone();
    off += p.numel();
  }
  optim.step();
  at::Tensor stats = buf.slice(0, off, off + 3).cpu();
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
  if (opt_.augment == "flip" && role == "train") gathered(it->second.flipped);
}

}  // namespace tlc
