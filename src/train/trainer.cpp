#include "tlc/trainer.h"

#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "tlc/error.h"
#include "tlc/model_file.h"
#include "tlc/util.h"

namespace tlc {

c10::Device resolve_device(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
  if (name == "cuda") {
    if (!torch::cuda::is_available())
      throw Error("--device cuda was asked for but no CUDA device is visible; use --device cpu or auto");
    return c10::Device(c10::kCUDA);
  }
  throw Error("unknown device '" + name + "'; choose auto, cpu or cuda");
}

TransferClassifier::TransferClassifier(Backbone backbone, std::vector<std::string> classes, Preprocess pre,
                                       TrainOptions opt)
    : backbone_(std::move(backbone)),
      classes_(std::move(classes)),
      pre_(pre),
      opt_(std::move(opt)),
      device_(resolve_device(opt_.device)) {
  if (classes_.size() < 2) throw Error("a classifier needs at least 2 classes");
  if (opt_.batch_size < 1) throw Error("--batch-size must be >= 1");
  torch::manual_seed(opt_.seed);
  HeadOptions ho;
  ho.in_features = backbone_.info().output_channels;
  ho.num_classes = static_cast<int64_t>(classes_.size());
  ho.hidden = opt_.hidden;
  ho.dropout = opt_.dropout;
  head_ = Head(ho);
  backbone_.to(device_);
  head_->to(device_);
}

at::Tensor TransferClassifier::normalize_batch(const at::Tensor& images_u8) const {
  return normalize(images_u8.to(device_), NormalizeSpec::from_mode(pre_.mode), at::kFloat, Layout::nchw);
}

TransferClassifier::StepResult TransferClassifier::train_step(const at::Tensor& normalized, const at::Tensor& labels,
                                                              torch::optim::Optimizer& optim) {
  at::Tensor feats = backbone_.pooled_features(normalized);
  head_->train();
  optim.zero_grad();
  at::Tensor logits = head_->forward(feats);
  at::Tensor loss = torch::nn::functional::cross_entropy(logits, labels.to(device_));
  loss.backward();
  optim.step();
  return {loss.item<double>(), logits.detach()};
}

std::vector<EpochStats> TransferClassifier::fit(const ImageSet& train, const ImageSet* val, const EpochCallback& cb) {
  if (train.size() == 0) throw Error("no training images left after skipping undecodable files");
  auto optim = make_optimizer(opt_.optimizer, head_->parameters());
  std::vector<EpochStats> history;
  std::vector<int64_t> order(train.size());
  for (int epoch = 1; epoch <= opt_.epochs; ++epoch) {
    auto t0 = std::chrono::steady_clock::now();
    std::iota(order.begin(), order.end(), 0);
    Rng rng(opt_.seed * 7919ULL + static_cast<uint64_t>(epoch));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    for (size_t b0 = 0; b0 < order.size(); b0 += static_cast<size_t>(opt_.batch_size)) {
      std::vector<int64_t> idx(order.begin() + b0, order.begin() + std::min(order.size(), b0 + opt_.batch_size));
      at::Tensor y = train.labels(idx).to(device_);
      StepResult step = train_step(normalize_batch(train.batch(idx)), y, *optim);
      const double l = step.loss;
      if (!std::isfinite(l))
        throw Error("the training loss became " + std::to_string(l) + " in epoch " + std::to_string(epoch) +
                    "; lower --lr (now " + std::to_string(opt_.optimizer.lr) + ") and train again");
      loss_sum += l * static_cast<double>(idx.size());
      correct += step.logits.argmax(1).eq(y).sum().item<int64_t>();
      seen += static_cast<int64_t>(idx.size());
    }
    EpochStats s;
    s.epoch = epoch;
    s.loss = loss_sum / static_cast<double>(seen);
    s.acc = static_cast<double>(correct) / static_cast<double>(seen);
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.images_per_second = s.seconds > 0 ? static_cast<double>(seen) / s.seconds : 0;
    s.val_loss = s.val_acc = std::numeric_limits<double>::quiet_NaN();
    if (val && val->size() > 0) {
      EvalStats v = score(*val);
      s.val_loss = v.loss;
      s.val_acc = v.acc;
    }
    history.push_back(s);
    if (cb) cb(s);
  }
  return history;
}

EvalStats TransferClassifier::score(const ImageSet& data) {
  EvalStats r;
  if (data.size() == 0) return r;
  head_->eval();
  torch::NoGradGuard ng;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t b0 = 0; b0 < data.size(); b0 += opt_.batch_size) {
    std::vector<int64_t> idx;
    for (int64_t i = b0; i < std::min(data.size(), b0 + opt_.batch_size); ++i) idx.push_back(i);
    at::Tensor y = data.labels(idx).to(device_);
    at::Tensor logits = head_->forward(backbone_.pooled_features(normalize_batch(data.batch(idx))));
    loss_sum += torch::nn::functional::cross_entropy(logits, y,
                                                     torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
  }
  r.count = data.size();
  r.loss = loss_sum / static_cast<double>(r.count);
  r.acc = static_cast<double>(correct) / static_cast<double>(r.count);
  return r;
}

at::Tensor TransferClassifier::predict_proba(const at::Tensor& images_u8) {
  head_->eval();
  torch::NoGradGuard ng;
  return at::softmax(head_->forward(backbone_.pooled_features(normalize_batch(images_u8))), 1).to(at::kCPU);
}

void TransferClassifier::save(const std::string& path) {
  ModelMeta meta;
  meta.classes = classes_;
  meta.image_size = pre_.image_size;
  meta.normalize = pre_.mode;
  meta.backbone_arch = backbone_.info().arch;
  meta.backbone_weights = backbone_.info().weights;
  // The file is always written from CPU copies so that it loads anywhere.
  backbone_.to(c10::Device(c10::kCPU));
  try {
    save_model_file(path, backbone_, head_, meta);
  } catch (...) {
    backbone_.to(device_);
    throw;
  }
  backbone_.to(device_);
}

}  // namespace tlc
