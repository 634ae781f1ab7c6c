#include "tlc/trainer.h"

#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>
#include <torch/serialize.h>
#include <torch/utils.h>
#include <ATen/Context.h>


#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>

#include "tlc/calibration.h"
#include "tlc/error.h"
#include "tlc/gpu_decode.h"
#include "tlc/text.h"
#include "tlc/model_file.h"
#include "tlc/prefetch.h"
#include "tlc/util.h"
#include "tlc/dist.h"
#include "trainer_internal.h"


namespace tlc {

namespace {

void check_options(const TrainOptions& o) {
  if (o.batch_size < 1) throw Error("--batch-size must be >= 1");
  parse_augment(o.augment);  // says what is wrong with it
  if (o.augment_views < 0 || o.augment_views > 64) throw Error("--augment-views must be 0 to 64");
  if (o.cache_features != "auto" && o.cache_features != "on" && o.cache_features != "off")
    throw Error("--cache-features must be auto, on or off");
  if (o.keep != "last" && o.keep != "best") throw Error("--keep must be last or best");
  if (o.lr_schedule != "constant" && o.lr_schedule != "cosine" && o.lr_schedule != "step")
    throw Error("--lr-schedule must be constant, cosine or step");
  if (o.fine_tune_layers < 0 || o.fine_tune_blocks < 0 || o.fine_tune_epochs < 0)
    throw Error("fine-tuning layers, blocks and epochs must be >= 0");
}

}  // namespace

TransferClassifier::TransferClassifier(Backbone backbone, std::vector<std::string> classes, Preprocess pre,
                                       TrainOptions opt)
    : backbone_(std::move(backbone)),
      classes_(std::move(classes)),
      pre_(pre),
      opt_(std::move(opt)),
      device_(resolve_device(opt_.device)) {
  if (classes_.size() < 2) throw Error("a classifier needs at least 2 classes");
  check_options(opt_);
  aug_ = parse_augment(opt_.augment);
  opt_.augment = to_string(aug_);  // canonical, as config.json and the model file store it
  // A --decode name that is not one, or gpu without CUDA or nvJPEG: said now, before any work.
  use_gpu_decode(parse_decode_backend(opt_.decode), device_);
  if (opt_.fine_tune_blocks > 0) opt_.fine_tune_layers = backbone_.layers_in_last_blocks(opt_.fine_tune_blocks);
  torch::manual_seed(opt_.seed);
  HeadOptions ho;
  ho.in_features = backbone_.info().output_channels;
  ho.num_classes = static_cast<int64_t>(classes_.size());
  ho.hidden = opt_.hidden;
  ho.dropout = opt_.dropout;
  head_ = Head(ho);
  backbone_.to(device_);
  head_->to(device_);
  // Decided now (a bad --engine/--precision is said before any work), built on the first frozen pass.
  backbone_.request_engine(engine_request(opt_.engine, opt_.precision, device_), pre_.image_size);
}

TransferClassifier TransferClassifier::load(const std::string& model_path, TrainOptions opt) {
  ModelFile m = ModelFile::load(model_path);
  auto& mod = m.module();
  const bool hidden = mod.hasattr("head_hidden_w");
  opt.hidden = hidden ? mod.attr("head_hidden_w").toTensor().size(0) : 0;
  Preprocess pre;
  pre.image_size = m.meta().image_size;
  pre.mode = m.meta().normalize;
  pre.resize = m.meta().resize;
  Backbone b = Backbone::from_module(mod.attr("backbone").toModule(), model_path + " (backbone)");
  TransferClassifier clf(std::move(b), m.meta().classes, pre, std::move(opt));
  clf.trained_augment_ = m.meta().augment;
  torch::NoGradGuard ng;
  if (hidden) {
    clf.head_->hidden_fc->weight.copy_(mod.attr("head_hidden_w").toTensor());
    clf.head_->hidden_fc->bias.copy_(mod.attr("head_hidden_b").toTensor());
  }
  clf.head_->fc->weight.copy_(mod.attr("head_w").toTensor());
  clf.head_->fc->bias.copy_(mod.attr("head_b").toTensor());
  return clf;
}

void TransferClassifier::calibrate(const ImageSet& train) {
  if (!backbone_.needs_calibration() || train.size() == 0) return;
  const at::Tensor c = calibration_batch(train, NormalizeSpec::from_mode(pre_.mode));
  backbone_.set_calibration(c, std::to_string(c.size(0)) + " training image" + (c.size(0) == 1 ? "" : "s"));
}

at::Tensor TransferClassifier::normalize_batch(const at::Tensor& images_u8) const {
  return backbone_input(images_u8, at::Tensor(), true);
}

at::Tensor TransferClassifier::backbone_input(const at::Tensor& images_u8, const at::Tensor& flip,
                                              bool whole_forward) const {
  // The frozen forward's engine says what it takes: bf16 channels-last for TorchScript in bf16, which the
  // kernel writes directly instead of float32 NCHW followed by a cast and a layout change (same values: both
  // round the fp32 result); float32 NCHW for the module itself and for OpenVINO.
  const bool frozen = whole_forward && !backbone_.any_trainable();
  const at::ScalarType dtype = frozen ? backbone_.frozen_dtype() : at::kFloat;
  const bool nhwc = frozen && backbone_.frozen_channels_last();
  return normalize(images_u8.to(device_), NormalizeSpec::from_mode(pre_.mode), dtype, nhwc ? Layout::nhwc : Layout::nchw,
                   flip.defined() ? flip.to(device_) : flip);
}

at::Tensor TransferClassifier::augmented_input(const at::Tensor& images_u8, const std::vector<int64_t>& view_id,
                                               bool whole_forward) const {
  const bool frozen = whole_forward && !backbone_.any_trainable();
  const at::ScalarType dtype = frozen ? backbone_.frozen_dtype() : at::kFloat;
  const bool nhwc = frozen && backbone_.frozen_channels_last();
  const at::Tensor views =
      view_params(aug_, images_u8.size(1), images_u8.size(2), opt_.seed, pixel_keys(images_u8), view_id);
  return augment(images_u8.to(device_), views, NormalizeSpec::from_mode(pre_.mode), dtype,
                 nhwc ? Layout::nhwc : Layout::nchw);
}

TransferClassifier::StepResult TransferClassifier::train_step(const at::Tensor& normalized, const at::Tensor& labels,
                                                              torch::optim::Optimizer& optim) {
  return step_on_features(backbone_.pooled_features(normalized), labels.to(device_), optim);
}

TransferClassifier::StepResult TransferClassifier::step_on_features(const at::Tensor& feats, const at::Tensor& labels,
                                                                    torch::optim::Optimizer& optim,
                                                                    const at::Tensor& weights) {
  namespace F = torch::nn::functional;
  head_->train();
  optim.zero_grad();
  at::Tensor logits = head_->forward(feats);
  // The batch's mean loss, weighted: sum(w_i * loss_i) / sum(w_i) (a batch whose weights are all 0 steps on 0).
  const at::Tensor loss = weights.defined() ? detail::weighted_cross_entropy(logits, labels, weights, weights.sum())
                                            : F::cross_entropy(logits, labels);
  loss.backward();
  optim.step();
  return {loss.item<double>(), logits.detach()};
}

std::vector<EpochStats> TransferClassifier::fit(const ImageSet& train, const ImageSet* val, const EpochCallback& cb,
                                                int first_epoch) {
  if (train.size() == 0) throw Error("no training images left after skipping undecodable files");
  trained_augment_ = opt_.augment;
  calibrate(train);
  std::unique_ptr<Resume> resume = resume_state();
  std::vector<EpochStats> h = resume ? resume->history : std::vector<EpochStats>{};
  if (!resume || resume->phase == 0) {
    auto head = run_phase(train, val, cb, first_epoch, opt_.epochs, false, resume.get(), h);
    h.insert(h.end(), head.begin(), head.end());
  }
  if (opt_.fine_tune_layers > 0 && opt_.fine_tune_epochs > 0) {
    int head_epochs = 0;
    for (const auto& s : h) head_epochs += s.phase == "head";
    Resume* r = resume && resume->phase == 1 ? resume.get() : nullptr;
    auto more = run_phase(train, val, cb, first_epoch + head_epochs, opt_.fine_tune_epochs, true, r, h);
    h.insert(h.end(), more.begin(), more.end());
  }
  return h;
}

std::vector<EpochStats> TransferClassifier::fine_tune(const ImageSet& train, const ImageSet* val, const EpochCallback& cb,
                                                      int first_epoch) {
  if (train.size() == 0) throw Error("no training images left after skipping undecodable files");
  if (opt_.fine_tune_layers < 1) throw Error("fine-tuning needs --fine-tune-layers >= 1");
  calibrate(train);
  std::unique_ptr<Resume> resume = resume_state();
  if (resume && resume->phase != 1)
    throw Error("checkpoint " + opt_.checkpoint + " was written by a head-training phase, not by fine-tuning; continue "
                "it with `tlc train --resume`");
  std::vector<EpochStats> h = resume ? resume->history : std::vector<EpochStats>{};
  auto more = run_phase(train, val, cb, first_epoch, opt_.fine_tune_epochs, true, resume.get(), h);
  h.insert(h.end(), more.begin(), more.end());
  return h;
}

std::unique_ptr<TransferClassifier::Resume> TransferClassifier::resume_state() const {
  if (opt_.resume) {
    if (opt_.checkpoint.empty() || !std::filesystem::exists(opt_.checkpoint))
      throw Error("nothing to resume: no checkpoint at " + opt_.checkpoint + " (the run finished, or never started)");
    auto r = std::make_unique<Resume>();
    static_cast<detail::CheckpointState&>(*r) = detail::read_checkpoint(opt_.checkpoint, r->archive);
    return r;
  }
  if (opt_.continue_from.empty()) return nullptr;
  // A finished run continued: its last phase goes on after the epochs it ran, watching the validation loss
  // as before.
  auto r = std::make_unique<Resume>();
  r->history = opt_.continue_from;
  const std::string phase = r->history.back().phase;
  r->phase = phase == "fine-tune" ? 1 : 0;
  for (const auto& s : r->history) {
    if (s.phase != phase) continue;
    ++r->epoch_index;
    if (!std::isfinite(s.val_loss)) continue;
    if (s.val_loss < r->best_loss) {
      r->best_loss = s.val_loss;
      r->since_best = 0;
    } else if (opt_.patience > 0) {
      ++r->since_best;
    }
  }
  return r;
}

EvalStats TransferClassifier::score(const ImageSet& data) {
  head_->eval();
  torch::NoGradGuard ng;
  const auto range = detail::shard_range(data.size(), world());
  std::vector<std::vector<int64_t>> plan;
  for (int64_t b0 = range.first; b0 < range.second; b0 += opt_.batch_size) {
    plan.emplace_back();
    for (int64_t i = b0; i < std::min(range.second, b0 + opt_.batch_size); ++i) plan.back().push_back(i);
  }
  auto batches = prefetch_batches(data, std::move(plan), device_);
  return detail::evaluate_in_order(data, opt_.batch_size, device_, range, [&](int64_t, int64_t) {
    check_interrupt("scoring");
    return head_->forward(backbone_.pooled_features(normalize_batch(batches->next())));
  });
}

at::Tensor TransferClassifier::predict_proba(const at::Tensor& images_u8) {
  head_->eval();
  torch::NoGradGuard ng;
  return at::softmax(head_->forward(backbone_.pooled_features(normalize_batch(images_u8))), 1).to(at::kCPU);
}

at::Tensor TransferClassifier::predict_proba_tta(const at::Tensor& images_u8, int views, const AugmentSpec& spec) {
  at::Tensor plain = predict_proba(images_u8);
  if (views <= 0) return plain;
  head_->eval();
  torch::NoGradGuard ng;
  const bool frozen = !backbone_.any_trainable();
  const at::ScalarType dtype = frozen ? backbone_.frozen_dtype() : at::kFloat;
  const Layout layout = frozen && backbone_.frozen_channels_last() ? Layout::nhwc : Layout::nchw;
  const std::vector<uint64_t> keys = pixel_keys(images_u8);
  at::Tensor sum = at::zeros_like(plain);
  for (int v = 0; v < views; ++v) {
    const at::Tensor params = view_params(spec, images_u8.size(1), images_u8.size(2), kTtaSeed, keys,
                                          std::vector<int64_t>(keys.size(), v));
    at::Tensor x = augment(images_u8.to(device_), params, NormalizeSpec::from_mode(pre_.mode), dtype, layout);
    sum += at::softmax(head_->forward(backbone_.pooled_features(x)), 1).to(at::kCPU);
  }
  return tta_blend(plain, sum / views);
}

at::Tensor TransferClassifier::predict_proba_from_features(const at::Tensor& pooled) {
  if (pooled.dim() != 2 || pooled.size(1) != backbone_.info().output_channels)
    throw Error("features of shape " + c10::str(pooled.sizes()) + " do not fit the head, which takes [N," +
                std::to_string(backbone_.info().output_channels) + "]");
  head_->eval();
  torch::NoGradGuard ng;
  return at::softmax(head_->forward(pooled.to(device_, at::kFloat)), 1).to(at::kCPU);
}

void TransferClassifier::save(const std::string& path) {
  ModelMeta meta;
  meta.classes = classes_;
  meta.image_size = pre_.image_size;
  meta.normalize = pre_.mode;
  meta.resize = pre_.resize;
  meta.backbone_arch = backbone_.info().arch;
  meta.backbone_weights = backbone_.info().weights;
  meta.augment = trained_augment_;
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
