#include "tlc/trainer.h"

#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>
#include <torch/serialize.h>
#include <torch/utils.h>
#include <ATen/Context.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>

#include "tlc/error.h"
#include "tlc/text.h"
#include "tlc/image_io.h"
#include "tlc/model_file.h"
#include "tlc/prefetch.h"
#include "tlc/util.h"
#include "checkpoint.h"

namespace tlc {

namespace {
std::atomic<int64_t> g_steps_done{0};  // training steps of this process (for TLC_INTERRUPT_AFTER_STEPS)

std::vector<int64_t> all_indices(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Mean loss and accuracy over `data` in order, batch by batch; logits_of(b0, b1) gives the logits of items
// [b0, b1). Shared by scoring from images and validation from cached activations.
template <typename LogitsOf>
EvalStats evaluate_in_order(const ImageSet& data, int64_t batch_size, c10::Device device, LogitsOf&& logits_of) {
  EvalStats r;
  if (data.size() == 0) return r;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t b0 = 0; b0 < data.size(); b0 += batch_size) {
    const int64_t b1 = std::min(data.size(), b0 + batch_size);
    std::vector<int64_t> idx(static_cast<size_t>(b1 - b0));
    std::iota(idx.begin(), idx.end(), b0);
    at::Tensor y = data.labels(idx).to(device);
    at::Tensor logits = logits_of(b0, b1);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
  }
  r.count = data.size();
  r.loss = loss_sum / static_cast<double>(r.count);
  r.acc = static_cast<double>(correct) / static_cast<double>(r.count);
  return r;
}

}  // namespace


namespace {

void check_options(const TrainOptions& o) {
  if (o.batch_size < 1) throw Error("--batch-size must be >= 1");
  if (o.augment != "none" && o.augment != "flip") throw Error("--augment must be none or flip");
  if (o.cache_features != "auto" && o.cache_features != "on" && o.cache_features != "off")
    throw Error("--cache-features must be auto, on or off");
  if (o.keep != "last" && o.keep != "best") throw Error("--keep must be last or best");
  if (o.precision != "auto" && o.precision != "fp32" && o.precision != "tf32" && o.precision != "bf16")
    throw Error("--precision must be auto, fp32, tf32 or bf16");
  if (o.lr_schedule != "constant" && o.lr_schedule != "cosine" && o.lr_schedule != "step")
    throw Error("--lr-schedule must be constant, cosine or step");
  if (o.fine_tune_layers < 0 || o.fine_tune_epochs < 0) throw Error("fine-tuning layers and epochs must be >= 0");
}

double scheduled_lr(const TrainOptions& o, double base, int e, int epochs) {
  if (o.lr_schedule == "cosine") return base * 0.5 * (1.0 + std::cos(M_PI * e / std::max(1, epochs)));
  if (o.lr_schedule == "step") return base * std::pow(o.lr_gamma, e / std::max(1, o.lr_step_epochs));
  return base;
}

// 64-bit FNV-1a, for cache keys (not for security).
struct Hasher {
  uint64_t h = 1469598103934665603ULL;
  void add(const void* data, size_t n) {
    auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
  void add(int64_t v) { add(&v, sizeof v); }
};

std::string file_hash(const std::string& path) {
  std::vector<uint8_t> bytes;
  std::string err;
  if (!read_file_bytes(path, bytes, &err)) throw Error("cannot read " + path + " to key the feature cache: " + err);
  Hasher h;
  h.add(bytes.data(), bytes.size());
  return std::to_string(h.h);
}

}  // namespace

// What feeds the trainable part in one phase: nothing cached (decode, normalize and run the whole backbone
// each batch), cached pooled features (nothing in the backbone trains), or cached activations of the frozen
// prefix of a Sequential backbone (fine-tuning its suffix).
struct TransferClassifier::Phase {
  enum Kind { none, pooled, prefix } kind = none;
  int64_t split = 0, length = 0;  // prefix: children [0, split) cached, [split, length) run
  bool flip = false;
  at::Tensor train_plain, train_flipped, val_plain;
};

// Where a checkpointed run stopped (read back from the checkpoint file), or where a finished run that is
// continued stopped (no archive: the weights are the classifier's own).
struct TransferClassifier::Resume : detail::CheckpointState {
  std::shared_ptr<torch::serialize::InputArchive> archive;
};


TransferClassifier::TransferClassifier(Backbone backbone, std::vector<std::string> classes, Preprocess pre,
                                       TrainOptions opt)
    : backbone_(std::move(backbone)),
      classes_(std::move(classes)),
      pre_(pre),
      opt_(std::move(opt)),
      device_(resolve_device(opt_.device)) {
  if (classes_.size() < 2) throw Error("a classifier needs at least 2 classes");
  check_options(opt_);
  torch::manual_seed(opt_.seed);
  HeadOptions ho;
  ho.in_features = backbone_.info().output_channels;
  ho.num_classes = static_cast<int64_t>(classes_.size());
  ho.hidden = opt_.hidden;
  ho.dropout = opt_.dropout;
  head_ = Head(ho);
  backbone_.to(device_);
  head_->to(device_);
  apply_precision(opt_.precision, device_, backbone_);
}

std::string apply_precision(const std::string& precision, const c10::Device& device, Backbone& backbone) {
  const std::string prec = precision == "auto" ? (device.is_cuda() ? "bf16" : "fp32") : precision;
  allow_tf32(prec == "tf32");
  backbone.set_frozen_dtype(prec == "bf16" ? at::kBFloat16 : at::kFloat);
  return prec;
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
  torch::NoGradGuard ng;
  if (hidden) {
    clf.head_->hidden_fc->weight.copy_(mod.attr("head_hidden_w").toTensor());
    clf.head_->hidden_fc->bias.copy_(mod.attr("head_hidden_b").toTensor());
  }
  clf.head_->fc->weight.copy_(mod.attr("head_w").toTensor());
  clf.head_->fc->bias.copy_(mod.attr("head_b").toTensor());
  return clf;
}

at::Tensor TransferClassifier::normalize_batch(const at::Tensor& images_u8) const {
  return backbone_input(images_u8, at::Tensor(), true);
}

at::Tensor TransferClassifier::backbone_input(const at::Tensor& images_u8, const at::Tensor& flip,
                                              bool whole_forward) const {
  // The frozen forward in reduced precision takes bf16/fp16 channels-last: the kernel writes that directly
  // instead of float32 NCHW followed by a cast and a layout change (same values: both round the fp32 result).
  const bool reduced = whole_forward && backbone_.frozen_dtype() != at::kFloat && !backbone_.any_trainable();
  return normalize(images_u8.to(device_), NormalizeSpec::from_mode(pre_.mode),
                   reduced ? backbone_.frozen_dtype() : at::kFloat, reduced ? Layout::nhwc : Layout::nchw,
                   flip.defined() ? flip.to(device_) : flip);
}

TransferClassifier::StepResult TransferClassifier::train_step(const at::Tensor& normalized, const at::Tensor& labels,
                                                              torch::optim::Optimizer& optim) {
  return step_on_features(backbone_.pooled_features(normalized), labels.to(device_), optim);
}

TransferClassifier::StepResult TransferClassifier::step_on_features(const at::Tensor& feats, const at::Tensor& labels,
                                                                    torch::optim::Optimizer& optim) {
  head_->train();
  optim.zero_grad();
  at::Tensor logits = head_->forward(feats);
  auto ce = torch::nn::functional::CrossEntropyFuncOptions();
  if (class_weights_.defined()) ce.weight(class_weights_);
  at::Tensor loss = torch::nn::functional::cross_entropy(logits, labels, ce);
  loss.backward();
  optim.step();
  return {loss.item<double>(), logits.detach()};
}

std::vector<EpochStats> TransferClassifier::fit(const ImageSet& train, const ImageSet* val, const EpochCallback& cb,
                                                int first_epoch) {
  if (train.size() == 0) throw Error("no training images left after skipping undecodable files");
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

// Decides what this phase caches (pooled features for the head phase, the frozen prefix's activations for
// fine-tuning, or nothing), within the memory budget, and fills the cache: from the on-disk feature cache when
// its key matches, else by running the frozen part once over the sets.
TransferClassifier::Phase TransferClassifier::prepare_phase(const ImageSet& train, const ImageSet* val, bool fine_tune,
                                                            bool flip_aug) {
  // Decide the cache for this phase.
  used_first_pass_ = false;
  Phase ph;
  ph.flip = flip_aug;
  const int64_t budget = opt_.cache_memory_mb * 1024 * 1024;
  const int64_t views = flip_aug ? 2 : 1;
  const int64_t nimg = train.size() + (val ? val->size() : 0);
  if (opt_.cache_features != "off") {
    if (!fine_tune) {
      const int64_t bytes = nimg * views * backbone_.info().output_channels * 4;
      if (opt_.cache_features == "on" || bytes <= budget) ph.kind = Phase::pooled;
    } else if (backbone_.sequential_length() > 0) {
      ph.length = backbone_.sequential_length();
      ph.split = backbone_.first_trainable_child();
      at::Tensor probe;
      {
        torch::NoGradGuard ng;
        probe = backbone_.forward_range(at::zeros({1, 3, pre_.image_size, pre_.image_size}, device_), 0, ph.split);
      }
      const int64_t bytes = nimg * views * probe.numel() * 4;
      if (ph.split > 0 && (opt_.cache_features == "on" || bytes <= budget)) ph.kind = Phase::prefix;
    }
  }

  // Runs the frozen part over a whole set in order (batch by batch) and keeps the result on the device.
  auto extract = [&](const ImageSet& set, bool flipped) {
    torch::NoGradGuard ng;
    std::vector<at::Tensor> parts;
    const std::string label = std::string(ph.kind == Phase::pooled ? "caching features" : "caching frozen prefix") +
                              (flipped ? " (flipped)" : "");
    auto batches = prefetch_batches(set, batches_in_order(set.size(), opt_.batch_size), device_);
    for (int64_t k = 0, b0 = 0; k < batches->count(); ++k, b0 += opt_.batch_size) {
      if (progress_) progress_(label, b0, set.size());
      check_interrupt(label);
      at::Tensor pixels = batches->next();
      at::Tensor flip_mask = flipped ? at::ones({pixels.size(0)}, at::kByte) : at::Tensor();
      at::Tensor x = backbone_input(pixels, flip_mask, ph.kind == Phase::pooled);
      parts.push_back(ph.kind == Phase::pooled ? backbone_.forward(x).mean({2, 3})
                                               : backbone_.forward_range(x, 0, ph.split));
    }
    if (progress_) progress_(label, set.size(), set.size());
    return at::cat(parts);
  };
  if (ph.kind != Phase::none) {
    std::string key_file;
    if (ph.kind == Phase::pooled && !opt_.cache_dir.empty()) {
      // On-disk cache: keyed by everything the features depend on, so a stale file is never used.
      Hasher h;
      h.add(std::string("tlc-features-v2"));
      h.add(file_hash(backbone_.info().path));
      h.add(pre_.image_size);
      h.add(to_string(pre_.mode));
      h.add(to_string(pre_.resize));                            // stretch, crop and pad give other pixels
      h.add(static_cast<int64_t>(backbone_.frozen_dtype()));    // bf16 features are not fp32 features
      h.add(static_cast<int64_t>(flip_aug));
      for (const ImageSet* s : {&train, val}) {
        if (!s) continue;
        h.add(std::string("set"));
        for (const auto& it : s->items()) {
          struct stat st {};
          ::stat(it.path.c_str(), &st);
          h.add(it.path);
          h.add(static_cast<int64_t>(st.st_size));
          h.add(static_cast<int64_t>(st.st_mtime));
        }
      }
      std::filesystem::create_directories(opt_.cache_dir);
      key_file = (std::filesystem::path(opt_.cache_dir) / ("features-" + std::to_string(h.h) + ".pt")).string();
      if (std::filesystem::exists(key_file)) {
        std::vector<at::Tensor> t;
        torch::load(t, key_file);
        ph.train_plain = t.at(0).to(device_);
        ph.val_plain = t.at(1).to(device_);
        if (flip_aug) ph.train_flipped = t.at(2).to(device_);
      }
    }
    if (!ph.train_plain.defined()) {
      // Features the scan computed while decoding (first_pass_sink), when they cover these sets; else a pass.
      auto streamed = [&](const std::string& role, bool flipped, int64_t rows) {
        if (ph.kind != Phase::pooled) return at::Tensor();
        auto it = first_pass_.find(role);
        if (it == first_pass_.end()) return at::Tensor();
        const auto& parts = flipped ? it->second.flipped : it->second.plain;
        if (parts.empty()) return at::Tensor();
        at::Tensor t = at::cat(parts);
        return t.size(0) == rows ? t : at::Tensor();
      };
      ph.train_plain = streamed("train", false, train.size());
      if (flip_aug) ph.train_flipped = streamed("train", true, train.size());
      if (val) ph.val_plain = streamed("val", false, val->size());
      used_first_pass_ = ph.train_plain.defined();
      if (!ph.train_plain.defined()) ph.train_plain = extract(train, false);
      if (flip_aug && !ph.train_flipped.defined()) ph.train_flipped = extract(train, true);
      if (val && !ph.val_plain.defined()) ph.val_plain = extract(*val, false);
      if (!key_file.empty()) {
        std::vector<at::Tensor> t = {ph.train_plain.cpu(), val ? ph.val_plain.cpu() : at::zeros({0})};
        if (flip_aug) t.push_back(ph.train_flipped.cpu());
        save_atomic(key_file, [&](const std::string& tmp) { torch::save(t, tmp); });
      }
    }
  }

  if (!fine_tune) first_pass_.clear();  // used once, by the head phase
  return ph;
}

std::vector<EpochStats> TransferClassifier::run_phase(const ImageSet& train, const ImageSet* val, const EpochCallback& cb,
                                                      int first_epoch, int epochs, bool fine_tune, Resume* resume,
                                                      const std::vector<EpochStats>& earlier) {
  std::vector<EpochStats> history;
  if (epochs <= 0) return history;
  if (val && val->size() == 0) val = nullptr;
  const bool flip_aug = opt_.augment == "flip";

  // Trainable parameters and the optimizer for this phase.
  std::vector<at::Tensor> bb_params = backbone_.unfreeze_last(fine_tune ? opt_.fine_tune_layers : 0);
  std::vector<at::Tensor> params = head_->parameters();
  params.insert(params.end(), bb_params.begin(), bb_params.end());
  OptimizerOptions oo = opt_.optimizer;
  if (fine_tune) oo.lr = opt_.fine_tune_lr;
  auto optim = make_optimizer(oo, params);

  // Class weights from the training labels.
  class_weights_ = at::Tensor();
  if (opt_.class_weights) {
    std::vector<double> counts(classes_.size(), 0.0);
    for (const auto& it : train.items()) counts[it.label] += 1;
    std::vector<float> w;
    for (double c : counts)
      w.push_back(c > 0 ? static_cast<float>(train.size() / (classes_.size() * c)) : 0.0f);
    class_weights_ = at::tensor(w).to(device_);
  }

  // Nothing to fill a cache for when a resumed phase has no epoch left to run.
  const Phase ph = (resume ? resume->epoch_index : 0) < epochs ? prepare_phase(train, val, fine_tune, flip_aug) : Phase{};

  // Pooled features for a batch of training images, with or without graph as the phase needs.
  // `pixels`: the batch's decoded images when nothing is cached (from the prefetcher), else undefined.
  auto train_features = [&](const std::vector<int64_t>& idx, const std::vector<uint8_t>& flips, const at::Tensor& pixels) {
    if (ph.kind == Phase::none) {
      at::Tensor mask = flip_aug ? at::tensor(std::vector<int64_t>(flips.begin(), flips.end())).to(at::kByte) : at::Tensor();
      return backbone_.forward(backbone_input(pixels, mask, true)).mean({2, 3});
    }
    at::Tensor sel = at::tensor(idx, at::kLong).to(device_);
    at::Tensor act = ph.train_plain.index_select(0, sel);
    if (flip_aug) {
      at::Tensor f = at::tensor(std::vector<int64_t>(flips.begin(), flips.end())).to(device_).to(at::kBool);
      at::Tensor alt = ph.train_flipped.index_select(0, sel);
      std::vector<int64_t> shape(act.dim(), 1);
      shape[0] = -1;
      act = at::where(f.view(shape), alt, act);
    }
    if (ph.kind == Phase::pooled) return act;
    return backbone_.forward_range(act, ph.split, ph.length).mean({2, 3});
  };
  auto evaluate_val = [&]() {
    if (!val) return EvalStats{};
    if (!ph.val_plain.defined()) return score(*val);
    head_->eval();
    torch::NoGradGuard ng;
    return evaluate_in_order(*val, opt_.batch_size, device_, [&](int64_t b0, int64_t b1) {
      at::Tensor act = ph.val_plain.slice(0, b0, b1);
      return head_->forward(ph.kind == Phase::pooled ? act : backbone_.forward_range(act, ph.split, ph.length).mean({2, 3}));
    });
  };

  // Best-epoch snapshot (--keep best) and early stopping (--patience) watch the validation loss.
  std::vector<at::Tensor> best_state;
  double best_loss = std::numeric_limits<double>::infinity();
  int since_best = 0;
  auto snapshot = [&] {
    std::vector<at::Tensor> s;
    for (auto& p : params) s.push_back(p.detach().clone());
    return s;
  };

  // Checkpoints: the whole training state, written atomically.
  auto save_checkpoint = [&](int epoch_index, int64_t next_step, double loss_sum, int64_t correct, int64_t seen) {
    if (opt_.checkpoint.empty()) return;
    detail::CheckpointState st;
    st.phase = fine_tune ? 1 : 0;
    st.epoch_index = epoch_index;
    st.next_step = next_step;
    st.loss_sum = loss_sum;
    st.correct = correct;
    st.seen = seen;
    st.best_loss = best_loss;
    st.since_best = since_best;
    st.history = earlier;
    st.history.insert(st.history.end(), history.begin(), history.end());
    detail::write_checkpoint(opt_.checkpoint, st, params, best_state, *optim);
  };
  int start_epoch = 0;
  int64_t start_step = 0;
  double r_loss_sum = 0;
  int64_t r_correct = 0, r_seen = 0;
  if (resume) {
    if (resume->archive)
      detail::load_checkpoint_tensors(*resume->archive, params, best_state, *optim, device_);
    else if (opt_.keep == "best" && std::isfinite(resume->best_loss))
      best_state = snapshot();  // a continued run: model.pt holds the best epoch so far
    start_epoch = resume->epoch_index;
    start_step = resume->next_step;
    r_loss_sum = resume->loss_sum;
    r_correct = resume->correct;
    r_seen = resume->seen;
    best_loss = resume->best_loss;
    since_best = resume->since_best;
  }
  // Test hook: TLC_INTERRUPT_AFTER_STEPS=N requests an interruption after N training steps of this
  // process, so that tests can stop a run at an exact point (a signal would land anywhere).
  const char* stop_env = std::getenv("TLC_INTERRUPT_AFTER_STEPS");
  const int64_t stop_after = stop_env ? std::atoll(stop_env) : -1;

  std::vector<int64_t> order(train.size());
  for (int e = start_epoch; e < epochs; ++e) {
    const int epoch = first_epoch + e;
    auto t0 = std::chrono::steady_clock::now();
    const double lr = scheduled_lr(opt_, oo.lr, e, epochs);
    for (auto& g : optim->param_groups()) g.options().set_lr(lr);
    // Every random choice of an epoch comes from (seed, epoch): the same with or without caches, and the
    // same when a run is continued.
    order = all_indices(train.size());
    Rng rng(opt_.seed * 7919ULL + static_cast<uint64_t>(epoch));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    Rng flip_rng(opt_.seed * 104729ULL + static_cast<uint64_t>(epoch));
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    int64_t step = 0;
    const int64_t skip = (e == start_epoch) ? start_step : 0;
    if (skip > 0) {
      loss_sum = r_loss_sum;
      correct = r_correct;
      seen = r_seen;
    }
    // Without caches the epoch's images are decoded ahead, in the epoch's order, from the first step to run.
    std::unique_ptr<Prefetcher> batches;
    if (ph.kind == Phase::none) {
      std::vector<std::vector<int64_t>> plan;
      for (size_t b0 = static_cast<size_t>(skip * opt_.batch_size); b0 < order.size(); b0 += static_cast<size_t>(opt_.batch_size))
        plan.emplace_back(order.begin() + b0, order.begin() + std::min(order.size(), b0 + opt_.batch_size));
      batches = prefetch_batches(train, std::move(plan), device_);
    }
    for (size_t b0 = 0; b0 < order.size(); b0 += static_cast<size_t>(opt_.batch_size), ++step) {
      std::vector<int64_t> idx(order.begin() + b0, order.begin() + std::min(order.size(), b0 + opt_.batch_size));
      std::vector<uint8_t> flips(idx.size(), 0);
      if (flip_aug)
        for (auto& f : flips) f = static_cast<uint8_t>(flip_rng.below(2));
      if (step < skip) continue;  // done before the interruption; the flips were drawn to stay in step
      // Dropout's random numbers come from (seed, epoch, step): identical after a resume.
      torch::manual_seed(opt_.seed * 1000003ULL + static_cast<uint64_t>(epoch) * 100003ULL + static_cast<uint64_t>(step));
      at::Tensor y = train.labels(idx).to(device_);
      head_->train();  // before the features: a fine-tuned suffix trains in the same pass
      const StepResult r = step_on_features(train_features(idx, flips, batches ? batches->next() : at::Tensor()), y, *optim);
      const at::Tensor& logits = r.logits;
      const double l = r.loss;
      if (!std::isfinite(l))
        throw Error("the training loss became " + std::to_string(l) + " in epoch " + std::to_string(epoch) +
                    " (step " + std::to_string(b0 / opt_.batch_size + 1) + "); lower the learning rate (now " +
                    format_number(lr) + ") and train again");
      loss_sum += l * static_cast<double>(idx.size());
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      seen += static_cast<int64_t>(idx.size());
      if (progress_) progress_("epoch " + std::to_string(epoch), static_cast<int64_t>(b0 + idx.size()), train.size());
      if (stop_after >= 0 && ++g_steps_done >= stop_after) request_interrupt();
      if (interrupt_requested()) {
        save_checkpoint(e, step + 1, loss_sum, correct, seen);
        throw Interrupted("interrupted in epoch " + std::to_string(epoch) + " after step " + std::to_string(step + 1) +
                          (opt_.checkpoint.empty() ? "" : "; the state is saved in " + opt_.checkpoint));
      }
    }
    EpochStats s;
    s.epoch = epoch;
    s.phase = fine_tune ? "fine-tune" : "head";
    s.cache = ph.kind == Phase::pooled ? "features" : ph.kind == Phase::prefix ? "prefix" : "none";
    s.lr = lr;
    s.loss = loss_sum / static_cast<double>(seen);
    s.acc = static_cast<double>(correct) / static_cast<double>(seen);
    s.val_loss = s.val_acc = std::numeric_limits<double>::quiet_NaN();
    if (val) {
      EvalStats v;
      try {
        v = evaluate_val();
      } catch (const Interrupted&) {  // every step of the epoch is done: keep them
        save_checkpoint(e, step, loss_sum, correct, seen);
        throw Interrupted("interrupted in epoch " + std::to_string(epoch) + " while scoring the validation set" +
                          (opt_.checkpoint.empty() ? "" : "; the state is saved in " + opt_.checkpoint));
      }
      s.val_loss = v.loss;
      s.val_acc = v.acc;
    }
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.images_per_second = s.seconds > 0 ? static_cast<double>(seen) / s.seconds : 0;
    history.push_back(s);
    if (cb) cb(s);
    bool stop = false;
    if (val) {
      if (s.val_loss < best_loss) {
        best_loss = s.val_loss;
        since_best = 0;
        if (opt_.keep == "best") best_state = snapshot();
      } else if (opt_.patience > 0 && ++since_best >= opt_.patience) {
        stop = true;
      }
    }
    save_checkpoint(stop ? epochs : e + 1, 0, 0, 0, 0);
    if (stop) break;
  }
  if (opt_.keep == "best" && !best_state.empty()) {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(best_state[i]);
  }
  backbone_.unfreeze_last(0);
  return history;
}

ChunkSink TransferClassifier::first_pass_sink(const std::string& role) {
  ChunkSink sink;
  first_pass_.erase(role);
  if (opt_.epochs <= 0 || opt_.cache_features == "off") return sink;
  sink.chunk = opt_.batch_size;
  sink.device = device_;
  const bool flipped = role == "train" && opt_.augment == "flip";
  first_pass_[role] = FirstPass{};
  // The first pass is where a large data set spends its first minutes: it shows progress like extraction.
  const std::string label = "decoding + caching features" + std::string(role == "train" ? "" : " (" + role + ")");
  sink.fn = [this, role, flipped, label](const at::Tensor& pixels, int64_t done, int64_t total) {
    check_interrupt("running the first pass (" + label + ")");
    if (pixels.size(0) > 0) {
      torch::NoGradGuard ng;
      FirstPass& fp = first_pass_.at(role);
      fp.plain.push_back(backbone_.forward(backbone_input(pixels, at::Tensor(), true)).mean({2, 3}));
      if (flipped)
        fp.flipped.push_back(
            backbone_.forward(backbone_input(pixels, at::ones({pixels.size(0)}, at::kByte), true)).mean({2, 3}));
    }
    if (progress_) progress_(label, done, total);
  };
  return sink;
}

EvalStats TransferClassifier::score(const ImageSet& data) {
  head_->eval();
  torch::NoGradGuard ng;
  auto batches = prefetch_batches(data, batches_in_order(data.size(), opt_.batch_size), device_);
  return evaluate_in_order(data, opt_.batch_size, device_, [&](int64_t, int64_t) {
    check_interrupt("scoring");
    return head_->forward(backbone_.pooled_features(normalize_batch(batches->next())));
  });
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
  meta.resize = pre_.resize;
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
