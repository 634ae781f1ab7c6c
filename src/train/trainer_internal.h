#pragma once
// Pieces shared by the trainer's units (trainer.cpp: the estimator; feature_cache.cpp: what a phase caches and
// the first pass; epoch_loop.cpp: the epochs of a phase). Internal to src/train.
#include <torch/nn/functional/loss.h>
#include <torch/serialize/input-archive.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <numeric>
#include <tuple>
#include <utility>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "tlc/dist.h"
#include "tlc/trainer.h"

namespace tlc {

// What feeds the trainable part in one phase: nothing cached (decode, normalize and run the whole backbone
// each batch), cached pooled features (nothing in the backbone trains), or cached activations of the frozen
// prefix of a Sequential backbone (fine-tuning its suffix).
struct TransferClassifier::Phase {
  enum Kind { none, pooled, prefix } kind = none;
  int64_t split = 0, length = 0;  // prefix: children [0, split) cached, [split, length) run
  bool flip = false;
  // A pool of views (--augment-views K: pool = K + 1): train_plain holds pool * N rows, view v of image i in
  // row v * N + i (view 0 the plain image, view v > 0 draw_view's view v - 1).
  int64_t pool = 0;
  // val_plain: pooled features (kind pooled, or kind none with fresh views: the validation images are never
  // augmented, so the head phase scores them from features computed once) or the prefix's maps (kind prefix).
  at::Tensor train_plain, train_flipped, val_plain;
};

// Where a checkpointed run stopped (read back from the checkpoint file), or where a finished run that is
// continued stopped (no archive: the weights are the classifier's own).
struct TransferClassifier::Resume : detail::CheckpointState {
  std::shared_ptr<torch::serialize::InputArchive> archive;
};

namespace detail {

// sum_i w_i * cross_entropy(logits_i, labels_i) / denominator, where a denominator <= 0 (all weights 0) counts as
// 1: the weighted mean of a batch when the denominator is its summed weights.
inline at::Tensor weighted_cross_entropy(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weights,
                                         const at::Tensor& denominator) {
  namespace F = torch::nn::functional;
  const at::Tensor per_image = F::cross_entropy(logits, labels, F::CrossEntropyFuncOptions().reduction(torch::kNone));
  return (per_image * weights).sum() / at::where(denominator > 0, denominator, at::ones_like(denominator));
}

// This rank's contiguous block [begin, end) of n items (everything in a world of one).
std::pair<int64_t, int64_t> shard_range(int64_t n, const Comm& comm);

// The gradients of a phase's trainable parameters, summed over the ranks in buckets that are all-reduced
// while backward runs (as PyTorch's DDP does): a bucket's all-reduce starts as soon as backward has produced
// all of its gradients and every earlier bucket has started, so every rank starts them in the same order.
// Buckets take the parameters in the order backward produces their gradients (the head, then the backbone
// from its last layer back), about `bucket_bytes` each; 0 makes one bucket, reduced when backward ends.
// Each parameter must be used once per forward pass (true of tlc's heads and backbones).
class GradientBuckets {
 public:
  GradientBuckets(std::vector<at::Tensor> params, size_t head_params, Comm& comm, int64_t bucket_bytes);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;
  void begin_step();
  // Starts what backward did not (all of it on a rank with nothing to train on this step: zeros), waits,
  // and leaves the summed gradients in the parameters' .grad.
  void finish_step();
  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> members;
    size_t arrived = 0;
    at::Tensor flat;
    Comm::Pending pending;
  };
  void arrived(size_t param, const at::Tensor& grad);
  void launch_ready();
  void launch(size_t b);
  std::vector<at::Tensor> params_;
  Comm& comm_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;
  std::vector<at::Tensor> grads_;
  std::vector<unsigned> hooks_;
  size_t next_launch_ = 0;
  std::mutex mu_;
};

// TLC_GRAD_BUCKET_MB: the bucket size of GradientBuckets; 0: one all-reduce after backward. Default: 4 with
// NCCL, 0 with Gloo (measured: overlap did not pay on 2 CPU cores).
int64_t gradient_bucket_bytes();

// Sums of this rank's per-item losses and correct predictions added up over the ranks (the identity in a
// world of one), as [loss_sum, correct].
std::pair<double, int64_t> sum_over_ranks(double loss_sum, int64_t correct);

// Mean loss and accuracy over `data` in order, batch by batch; logits_of(b0, b1) gives the logits of items
// [b0, b1). Shared by scoring from images and validation from cached activations. In a distributed run each
// rank scores its block [begin, end) of the set (shard_range) and the sums are added up over the ranks.
template <typename LogitsOf>
EvalStats evaluate_in_order(const ImageSet& data, int64_t batch_size, c10::Device device, std::pair<int64_t, int64_t> range,
                            LogitsOf&& logits_of) {
  EvalStats r;
  if (data.size() == 0) return r;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t b0 = range.first; b0 < range.second; b0 += batch_size) {
    const int64_t b1 = std::min(range.second, b0 + batch_size);
    std::vector<int64_t> idx(static_cast<size_t>(b1 - b0));
    std::iota(idx.begin(), idx.end(), b0);
    at::Tensor y = data.labels(idx).to(device);
    at::Tensor logits = logits_of(b0, b1);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
  }
  std::tie(loss_sum, correct) = sum_over_ranks(loss_sum, correct);
  r.count = data.size();
  r.loss = loss_sum / static_cast<double>(r.count);
  r.acc = static_cast<double>(correct) / static_cast<double>(r.count);
  return r;
}

}  // namespace detail
}  // namespace tlc
