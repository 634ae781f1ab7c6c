// The epoch loop of one training phase (head, or fine-tuning): optimizer, class weights, the phase's cache,
// shuffling and augmentation drawn from (seed, epoch), validation, --keep best and --patience, checkpoints
// and interruptions.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>

#include <atomic>

#include "tlc/dist.h"
#include "tlc/error.h"
#include "tlc/prefetch.h"
#include "tlc/text.h"
#include "tlc/util.h"
#include "trainer_internal.h"

namespace tlc {

namespace {
std::atomic<int64_t> g_steps_done{0};  // training steps of this process (for TLC_INTERRUPT_AFTER_STEPS)

std::vector<int64_t> all_indices(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

double scheduled_lr(const TrainOptions& o, double base, int e, int epochs) {
  if (o.lr_schedule == "cosine") return base * 0.5 * (1.0 + std::cos(M_PI * e / std::max(1, epochs)));
  if (o.lr_schedule == "step") return base * std::pow(o.lr_gamma, e / std::max(1, o.lr_step_epochs));
  return base;
}

}  // namespace

std::vector<EpochStats> TransferClassifier::run_phase(const ImageSet& train, const ImageSet* val, const EpochCallback& cb,
                                                      int first_epoch, int epochs, bool fine_tune, Resume* resume,
                                                      const std::vector<EpochStats>& earlier) {
  std::vector<EpochStats> history;
  if (epochs <= 0) return history;
  if (val && val->size() == 0) val = nullptr;
  // Augmentation: "flip" alone has two views, both cached; other transforms take one view per image per epoch,
  // from a pool of K + 1 (--augment-views K: cached like plain features) or fresh each epoch (K = 0).
  const bool flip_aug = aug_.flip_only();
  const bool views_aug = !aug_.none() && !flip_aug;
  const int64_t pool = views_aug && opt_.augment_views > 0 ? opt_.augment_views + 1 : 0;
  // Data parallelism: every rank draws the same global batches and works on its slice of each.
  Comm& comm = world();
  const bool parallel = comm.world_size() > 1;
  auto my_part = [&comm](const auto& batch) {
    const auto [lo, hi] = detail::shard_range(static_cast<int64_t>(batch.size()), comm);
    return std::decay_t<decltype(batch)>(batch.begin() + lo, batch.begin() + hi);
  };


  // Trainable parameters and the optimizer for this phase.
  std::vector<at::Tensor> bb_params = backbone_.unfreeze_last(fine_tune ? opt_.fine_tune_layers : 0);
  std::vector<at::Tensor> params = head_->parameters();
  params.insert(params.end(), bb_params.begin(), bb_params.end());
  OptimizerOptions oo = opt_.optimizer;
  if (fine_tune) oo.lr = opt_.fine_tune_lr;
  auto optim = make_optimizer(oo, params);

  // Class weights from the training labels (the counts of images, whatever their sample weights).
  at::Tensor class_weights;  // float [classes] on the CPU, when opt_.class_weights
  if (opt_.class_weights) {
    std::vector<double> counts(classes_.size(), 0.0);
    for (const auto& it : train.items()) counts[it.label] += 1;
    std::vector<float> w;
    for (double c : counts)
      w.push_back(c > 0 ? static_cast<float>(train.size() / (classes_.size() * c)) : 0.0f);
    class_weights = at::tensor(w);
  }
  // Each image's weight in its batch's loss: its sample weight times its class's weight; undefined when all are 1.
  auto loss_weights = [&](const std::vector<int64_t>& idx) -> at::Tensor {
    if (!train.weighted() && !class_weights.defined()) return at::Tensor();
    at::Tensor w = train.weights(idx);
    if (class_weights.defined()) w = w * class_weights.index_select(0, train.labels(idx));
    return w;
  };

  // Distributed: the gradients are summed over the ranks in buckets while backward runs.
  std::unique_ptr<detail::GradientBuckets> buckets;
  if (parallel)
    buckets = std::make_unique<detail::GradientBuckets>(params, head_->parameters().size(), comm,
                                                        detail::gradient_bucket_bytes());

  // Nothing to fill a cache for when a resumed phase has no epoch left to run.
  const Phase ph = (resume ? resume->epoch_index : 0) < epochs ? prepare_phase(train, val, fine_tune, flip_aug, pool) : Phase{};

  // Pooled features for a batch of training images, with or without graph as the phase needs.
  // `pixels`: the batch's decoded images when nothing is cached (from the prefetcher), else undefined.
  // `choice`: per image, the flip (--augment flip) or the view of the pool; `epoch` names fresh views.
  auto train_features = [&](const std::vector<int64_t>& idx, const std::vector<int64_t>& choice, const at::Tensor& pixels,
                            int epoch) {
    if (ph.kind == Phase::none) {
      auto input = [&](bool whole_forward) {
        if (!views_aug)
          return backbone_input(pixels, flip_aug ? at::tensor(choice).to(at::kByte) : at::Tensor(), whole_forward);
        std::vector<int64_t> view_id(idx.size(), (int64_t{1} << 32) + epoch);  // fresh: one view per epoch
        if (pool > 0)
          for (size_t r = 0; r < idx.size(); ++r) view_id[r] = choice[r] - 1;  // -1: the plain view
        return augmented_input(pixels, view_id, whole_forward);
      };
      // Fine-tuning a backbone with blocks: the frozen prefix runs as the prefix cache would have computed it
      // (on the engine, without a graph), so that the cache changes no result; only the suffix is recorded.
      const int64_t length = backbone_.sequential_length();
      if (backbone_.any_trainable() && length > 0) {
        const int64_t split = backbone_.first_trainable_child();
        at::Tensor act = backbone_.forward_prefix(input(false), split);
        return backbone_.forward_range(act, split, length).mean({2, 3});
      }
      return backbone_.pooled_features(input(true));
    }
    if (ph.pool > 0) {
      std::vector<int64_t> rows(idx.size());
      for (size_t r = 0; r < idx.size(); ++r) rows[r] = choice[r] * train.size() + idx[r];
      at::Tensor act = ph.train_plain.index_select(0, at::tensor(rows, at::kLong).to(device_));
      if (ph.kind == Phase::pooled) return act;
      return backbone_.forward_range(act, ph.split, ph.length).mean({2, 3});
    }
    const std::vector<int64_t>& flips = choice;
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
    return detail::evaluate_in_order(*val, opt_.batch_size, device_, detail::shard_range(val->size(), world()),
                                     [&](int64_t b0, int64_t b1) {
      at::Tensor act = ph.val_plain.slice(0, b0, b1);
      return head_->forward(ph.kind == Phase::prefix ? backbone_.forward_range(act, ph.split, ph.length).mean({2, 3}) : act);
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
    if (opt_.checkpoint.empty() || !comm.is_root()) return;  // every rank holds the same state: rank 0 writes it
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
    const double comm0 = comm.seconds_in_collectives();
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
        plan.push_back(my_part(std::vector<int64_t>(order.begin() + b0, order.begin() + std::min(order.size(), b0 + opt_.batch_size))));
      batches = prefetch_batches(train, std::move(plan), device_);
    }
    for (size_t b0 = 0; b0 < order.size(); b0 += static_cast<size_t>(opt_.batch_size), ++step) {
      std::vector<int64_t> idx(order.begin() + b0, order.begin() + std::min(order.size(), b0 + opt_.batch_size));
      std::vector<int64_t> flips(idx.size(), 0);  // the flip, or the view of the pool, of each image
      if (flip_aug || pool > 0)
        for (auto& f : flips) f = static_cast<int64_t>(flip_rng.below(flip_aug ? 2 : static_cast<uint64_t>(pool)));
      if (step < skip) continue;  // done before the interruption; the choices were drawn to stay in step
      // Dropout's random numbers come from (seed, epoch, step): identical after a resume (in a distributed
      // run each rank's slice draws its own from (seed, epoch, step, rank)).
      torch::manual_seed(opt_.seed * 1000003ULL + static_cast<uint64_t>(epoch) * 100003ULL + static_cast<uint64_t>(step) +
                         static_cast<uint64_t>(comm.rank()) * 7777777ULL);
      double l = 0;
      bool stop_now = false;
      head_->train();  // before the features: a fine-tuned suffix trains in the same pass
      if (parallel) {
        // This rank's slice of the global batch; the gradients are summed over the ranks, so that the step is
        // the single-process step on the whole batch.
        const std::vector<int64_t> mine = my_part(idx);
        const std::vector<int64_t> my_flips = my_part(flips);
        const at::Tensor pixels = batches ? batches->next() : at::Tensor();
        const at::Tensor w = loss_weights(idx);
        const double denominator = w.defined() ? w.sum().item<double>() : static_cast<double>(idx.size());
        const at::Tensor my_w = w.defined() ? loss_weights(mine).to(device_) : at::Tensor();
        if (stop_after >= 0 && ++g_steps_done >= stop_after) request_interrupt();  // travels with this step
        const SyncedStep r = step_data_parallel([&] { return train_features(mine, my_flips, pixels, epoch); },
                                                train.labels(mine).to(device_), my_w, denominator, *optim, *buckets);
        l = r.loss;
        correct += r.correct;
        stop_now = r.stop;
      } else {
        at::Tensor y = train.labels(idx).to(device_);
        const at::Tensor w = loss_weights(idx);
        const StepResult r = step_on_features(train_features(idx, flips, batches ? batches->next() : at::Tensor(), epoch),
                                              y, *optim, w.defined() ? w.to(device_) : w);
        l = r.loss;
        correct += r.logits.argmax(1).eq(y).sum().item<int64_t>();
        if (stop_after >= 0 && ++g_steps_done >= stop_after) request_interrupt();
        stop_now = interrupt_requested();
      }
      if (!std::isfinite(l))
        throw Error("the training loss became " + std::to_string(l) + " in epoch " + std::to_string(epoch) +
                    " (step " + std::to_string(b0 / opt_.batch_size + 1) + "); lower the learning rate (now " +
                    format_number(lr) + ") and train again");
      loss_sum += l * static_cast<double>(idx.size());
      seen += static_cast<int64_t>(idx.size());
      if (progress_) progress_("epoch " + std::to_string(epoch), static_cast<int64_t>(b0 + idx.size()), train.size());
      if (stop_now) {
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
    s.comm_seconds = comm.seconds_in_collectives() - comm0;
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

}  // namespace tlc
