// The feature cache of a training phase: what it caches (pooled features while nothing in the backbone trains,
// the frozen prefix's activations while fine-tuning, or nothing), the on-disk cache and its key, and the first
// pass that computes features while the images are decoded.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include <torch/serialize.h>

#include "tlc/dist.h"
#include "tlc/error.h"
#include "tlc/gpu_decode.h"
#include "tlc/image_io.h"
#include "tlc/prefetch.h"
#include "tlc/util.h"
#include "trainer_internal.h"

namespace tlc {

namespace {


std::string format_bytes(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

std::string file_hash(const std::string& path) {
  std::vector<uint8_t> bytes;
  std::string err;
  if (!read_file_bytes(path, bytes, &err)) throw Error("cannot read " + path + " to key the feature cache: " + err);
  Hasher h;
  h.add(bytes.data(), bytes.size());
  return std::to_string(h.h);
}

}  // namespace

// Decides what this phase caches (pooled features for the head phase, the frozen prefix's activations for
// fine-tuning, or nothing), within the memory budget, and fills the cache: from the on-disk feature cache when
// its key matches, else by running the frozen part once over the sets.
TransferClassifier::Phase TransferClassifier::prepare_phase(const ImageSet& train, const ImageSet* val, bool fine_tune,
                                                            bool flip_aug, int64_t pool) {
  // Decide the cache for this phase.
  used_first_pass_ = false;
  cache_note_.clear();
  Phase ph;
  ph.flip = flip_aug;
  ph.pool = pool;
  const int64_t budget = opt_.cache_memory_mb * 1024 * 1024;
  const int64_t views = flip_aug ? 2 : std::max<int64_t>(pool, 1);
  const int64_t nimg = train.size() * views + (val ? val->size() : 0);
  // Fresh augmented views (--augment-views 0) are new every epoch: nothing to cache.
  const bool fresh_views = !aug_.none() && !flip_aug && pool == 0;
  std::vector<int64_t> prefix_shape;  // [1,C,h,w] of the frozen prefix's output
  if (opt_.cache_features != "off" && !fresh_views) {
    if (!fine_tune) {
      const int64_t bytes = nimg * backbone_.info().output_channels * 4;
      if (opt_.cache_features == "on" || bytes <= budget) ph.kind = Phase::pooled;
    } else if (backbone_.sequential_length() > 0) {
      ph.length = backbone_.sequential_length();
      ph.split = backbone_.first_trainable_child();
      at::Tensor probe;
      {
        torch::NoGradGuard ng;
        probe = backbone_.forward_range(at::zeros({1, 3, pre_.image_size, pre_.image_size}, device_), 0, ph.split);
      }
      prefix_shape = probe.sizes().vec();
      const int64_t bytes = nimg * probe.numel() * 4;
      if (ph.split > 0 && (opt_.cache_features == "on" || bytes <= budget)) ph.kind = Phase::prefix;
    }
  }

  // Runs the frozen part over a whole set in order (batch by batch) and keeps the result on the device. In
  // a distributed run each rank runs its block of the set and the blocks are gathered.
  // `view`: 0 the plain images; 1 flipped (--augment flip) or view 1 of the pool (draw_view's view 0), ...
  auto extract = [&](const ImageSet& set, int64_t view) {
    torch::NoGradGuard ng;
    std::vector<at::Tensor> parts;
    const bool flipped = flip_aug && view == 1;
    const bool pooled = ph.kind != Phase::prefix;  // none: the validation features of fresh views
    const std::string label = std::string(pooled ? "caching features" : "caching frozen prefix") +
                              (flipped ? " (flipped)"
                               : view > 0 ? " (view " + std::to_string(view) + " of " + std::to_string(pool - 1) + ")"
                                          : "");
    const auto [lo, hi] = detail::shard_range(set.size(), world());
    std::vector<std::vector<int64_t>> plan;
    for (int64_t b0 = lo; b0 < hi; b0 += opt_.batch_size) {
      plan.emplace_back();
      for (int64_t i = b0; i < std::min(hi, b0 + opt_.batch_size); ++i) plan.back().push_back(i);
    }
    auto batches = prefetch_batches(set, std::move(plan), device_);
    for (int64_t k = 0, done = 0; k < batches->count(); ++k) {
      if (progress_) progress_(label, done, hi - lo);
      check_interrupt(label);
      at::Tensor pixels = batches->next();
      done += pixels.size(0);
      at::Tensor x;
      if (view > 0 && !flip_aug) {
        x = augmented_input(pixels, std::vector<int64_t>(static_cast<size_t>(pixels.size(0)), view - 1), pooled);
      } else {
        x = backbone_input(pixels, flipped ? at::ones({pixels.size(0)}, at::kByte) : at::Tensor(), pooled);
      }
      parts.push_back(pooled ? backbone_.pooled_features(x) : backbone_.forward_prefix(x, ph.split));
    }
    if (progress_) progress_(label, hi - lo, hi - lo);
    std::vector<int64_t> empty_shape = pooled ? std::vector<int64_t>{0, backbone_.info().output_channels} : prefix_shape;
    empty_shape[0] = 0;
    at::Tensor mine = parts.empty() ? at::zeros(empty_shape, at::TensorOptions().device(device_)) : at::cat(parts);
    return world().allgather_rows(mine);
  };
  // Pooled features the scan computed while decoding (first_pass_sink), when they cover `rows`; else undefined
  // (and a pass computes them). Never for the prefix cache, whose rows are the prefix's maps.
  auto streamed = [&](const std::string& role, bool flipped, int64_t rows) {
    if (ph.kind == Phase::prefix) return at::Tensor();
    auto it = first_pass_.find(role);
    if (it == first_pass_.end()) return at::Tensor();
    const auto& parts = flipped ? it->second.flipped : it->second.plain;
    if (parts.empty()) return at::Tensor();
    at::Tensor t = at::cat(parts);
    return t.size(0) == rows ? t : at::Tensor();
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
      h.add(backbone_.engine_name());  // bf16 features are not fp32 features, nor OpenVINO's TorchScript's
      h.add(static_cast<int64_t>(flip_aug));
      if (pool > 0) {  // the views depend on the transforms, their number and the seed they are drawn from
        h.add(std::string("views"));
        h.add(opt_.augment);
        h.add(pool);
        h.add(static_cast<int64_t>(opt_.seed));
      }
      h.add(std::string(gpu_decoder_ ? "decode:nvjpeg" : "decode:cpu"));  // decoders differ by a level or two
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
      // Every rank must take the same path (a cache folder that is not shared between machines: all compute).
      if (world().all_true(std::filesystem::exists(key_file))) {
        std::vector<at::Tensor> t;
        torch::load(t, key_file);
        ph.train_plain = t.at(0).to(device_);
        ph.val_plain = t.at(1).to(device_);
        if (flip_aug) ph.train_flipped = t.at(2).to(device_);
      }
    }
    if (!ph.train_plain.defined()) {
      ph.train_plain = streamed("train", false, train.size());
      if (flip_aug) ph.train_flipped = streamed("train", true, train.size());
      if (val) ph.val_plain = streamed("val", false, val->size());
      used_first_pass_ = ph.train_plain.defined();
      if (!ph.train_plain.defined()) ph.train_plain = extract(train, 0);
      if (flip_aug && !ph.train_flipped.defined()) ph.train_flipped = extract(train, 1);
      if (pool > 1) {
        // The pool's views: given by use_features when they cover the set (an in-process cache), else a pass each.
        at::Tensor given = streamed("train_views", false, train.size() * (pool - 1));
        std::vector<at::Tensor> all = {ph.train_plain};
        if (given.defined()) all.push_back(given);
        else
          for (int64_t v = 1; v < pool; ++v) all.push_back(extract(train, v));
        used_first_pass_ = used_first_pass_ && given.defined();
        ph.train_plain = at::cat(all);
      }
      if (val && !ph.val_plain.defined()) ph.val_plain = extract(*val, 0);
      if (!key_file.empty() && world().is_root()) {
        std::vector<at::Tensor> t = {ph.train_plain.cpu(), val ? ph.val_plain.cpu() : at::zeros({0})};
        if (flip_aug) t.push_back(ph.train_flipped.cpu());
        save_atomic(key_file, [&](const std::string& tmp) { torch::save(t, tmp); });
      }
    }
  }

  // Fresh views: the head phase still scores the validation images, never augmented, from features computed
  // once (from the first pass when it streamed them), within the memory budget. Not while fine-tuning: the
  // backbone changes under them. Not on disk: a pass over the validation set is all the disk would save.
  if (fresh_views && !fine_tune && val && opt_.cache_features != "off" &&
      (opt_.cache_features == "on" || val->size() * backbone_.info().output_channels * 4 <= budget)) {
    ph.val_plain = streamed("val", false, val->size());
    if (!ph.val_plain.defined()) ph.val_plain = extract(*val, 0);
    cache_note_ = "feature cache: " + std::to_string(val->size()) + " validation images only (fresh views train on " +
                  std::to_string(train.size()) + " images through the backbone every epoch), " +
                  format_bytes(ph.val_plain.numel() * ph.val_plain.element_size()) + " on " + device_.str();
  }

  if (ph.kind != Phase::none) {
    int64_t bytes = 0;
    for (const at::Tensor* t : {&ph.train_plain, &ph.train_flipped, &ph.val_plain})
      if (t->defined()) bytes += t->numel() * t->element_size();
    cache_note_ = std::string(ph.kind == Phase::pooled ? "feature cache" : "prefix cache") + ": " +
                  std::to_string(train.size()) + " training images x " +
                  (pool > 0 ? std::to_string(pool) + " views (plain + " + std::to_string(pool - 1) + " augmented)"
                   : flip_aug ? std::string("2 views (plain + flipped)")
                              : std::string("1 view")) +
                  (val ? " + " + std::to_string(val->size()) + " validation images" : std::string()) + ", " +
                  format_bytes(bytes) + " on " + device_.str();
  }
  if (!fine_tune) first_pass_.clear();  // used once, by the head phase
  return ph;
}

ChunkSink TransferClassifier::first_pass_sink(const std::string& role) {
  ChunkSink sink;
  first_pass_.erase(role);
  if (opt_.epochs <= 0 || opt_.cache_features == "off") return sink;
  // Fresh augmented views every epoch (--augment-views 0): the head phase caches only the validation features,
  // within the memory budget (prepare_phase's rule), and they are decoded on the CPU like the training images.
  const bool fresh_val = !aug_.none() && !aug_.flip_only() && opt_.augment_views == 0;
  if (fresh_val && role != "val") return sink;
  sink.chunk = opt_.batch_size;
  sink.device = device_;
  if (!fresh_val) {
    if (!gpu_decoder_) gpu_decoder_ = open_gpu_decoder(parse_decode_backend(opt_.decode), device_);
    sink.gpu = gpu_decoder_.get();
  }
  const bool flipped = role == "train" && aug_.flip_only();
  first_pass_[role] = FirstPass{};
  // The first pass is where a large data set spends its first minutes: it shows progress like extraction.
  const std::string label = "decoding + caching features" + std::string(role == "train" ? "" : " (" + role + ")");
  const int64_t max_rows =
      fresh_val && opt_.cache_features != "on" ? opt_.cache_memory_mb * 1024 * 1024 / (backbone_.info().output_channels * 4)
                                               : -1;
  sink.fn = [this, role, flipped, label, max_rows](const at::Tensor& pixels, int64_t done, int64_t total) {
    check_interrupt("running the first pass (" + label + ")");
    if (pixels.size(0) > 0 && (max_rows < 0 || total <= max_rows)) {
      torch::NoGradGuard ng;
      FirstPass& fp = first_pass_.at(role);
      fp.plain.push_back(backbone_.pooled_features(backbone_input(pixels, at::Tensor(), true)));
      if (flipped)
        fp.flipped.push_back(
            backbone_.pooled_features(backbone_input(pixels, at::ones({pixels.size(0)}, at::kByte), true)));
    }
    if (progress_) progress_(label, done, total);
  };
  return sink;
}

at::Tensor TransferClassifier::features_in_order(const ImageSet& set, const std::string& what,
                                                const std::function<at::Tensor(const at::Tensor&)>& input) {
  torch::NoGradGuard ng;
  std::vector<at::Tensor> parts;
  auto batches = prefetch_batches(set, batches_in_order(set.size(), opt_.batch_size), device_);
  for (int64_t k = 0; k < batches->count(); ++k) {
    check_interrupt(what);
    parts.push_back(backbone_.pooled_features(input(batches->next())));
  }
  if (parts.empty()) return at::zeros({0, backbone_.info().output_channels}, at::TensorOptions().device(device_));
  return at::cat(parts);
}

at::Tensor TransferClassifier::pooled_features(const ImageSet& set, bool flipped) {
  return features_in_order(set, "computing features", [&](const at::Tensor& pixels) {
    return backbone_input(pixels, flipped ? at::ones({pixels.size(0)}, at::kByte) : at::Tensor(), true);
  });
}

at::Tensor TransferClassifier::view_features(const ImageSet& set, int64_t view) {
  return features_in_order(set, "computing features of augmented views", [&](const at::Tensor& pixels) {
    return augmented_input(pixels, std::vector<int64_t>(static_cast<size_t>(pixels.size(0)), view), true);
  });
}

void TransferClassifier::use_features(const std::string& role, const at::Tensor& plain, const at::Tensor& flipped,
                                      const at::Tensor& views) {
  FirstPass fp;
  if (plain.defined()) fp.plain.push_back(plain.to(device_, at::kFloat));
  if (flipped.defined()) fp.flipped.push_back(flipped.to(device_, at::kFloat));
  first_pass_[role] = std::move(fp);
  if (views.defined() && role == "train") {
    FirstPass v;
    v.plain.push_back(views.to(device_, at::kFloat));
    first_pass_["train_views"] = std::move(v);
  }
}

}  // namespace tlc
