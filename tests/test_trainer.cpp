// Training: feature and prefix caches give the same results as no cache, fine-tuning, and the controls
// (keep best, early stopping, schedules, class weights).
#include <ATen/ATen.h>

#include <cmath>
#include <iostream>
#include <map>
#include <set>
#include <numeric>

#include "test_util.h"
#include "tiny_training.h"
#include "tlc/error.h"
#include "tlc/trainer.h"

using namespace tlc_test;

namespace {

struct Data {
  TempDir dir;
  tlc::ImageSet train, val;
  std::vector<std::string> classes;
};

std::unique_ptr<Data> make_data(int per_class = 12, int size = 16) {
  auto d = std::make_unique<Data>();
  d->classes = make_dataset(d->dir.path(), 3, per_class, size, 5);
  auto folder = tlc::list_image_folder(d->dir.str());
  auto split = tlc::split_stratified(folder.items, 3, 0.25, 0.0, 1);
  tlc::DecodeOptions o;
  o.size = size;
  tlc::ScanReport r;
  d->train = tlc::ImageSet::scan(split.train, o, 0, 1 << 30, false, r);
  d->val = tlc::ImageSet::scan(split.val, o, 0, 1 << 30, false, r);
  return d;
}

tlc::TransferClassifier make(const tlc::TrainOptions& o, const char* backbone = "models/tiny_cnn.pt") {
  tlc::Preprocess pre;
  pre.image_size = 16;
  return tlc::TransferClassifier(tlc::Backbone::load(source(backbone)), {"a", "b", "c"}, pre, o);
}

tlc::TrainOptions base_options() {
  tlc::TrainOptions o;
  o.device = "cpu";
  o.epochs = 3;
  o.batch_size = 8;
  o.optimizer.name = "adam";
  o.optimizer.lr = 0.01;
  o.dropout = 0.3;  // dropout draws random numbers: the caches must not change their order
  return o;
}

void expect_same_params(std::vector<at::Tensor> a, std::vector<at::Tensor> b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(at::allclose(a[i], b[i], 1e-4, 1e-5)) << "parameter " << i << " differs by "
                                                       << (a[i] - b[i]).abs().max().item<double>();
}

}  // namespace

TEST(Trainer, FeatureCacheGivesTheSameHeadWithAndWithoutFlips) {
  auto d = make_data();
  for (std::string aug : {"none", "flip"}) {
    auto o = base_options();
    o.augment = aug;
    o.cache_features = "on";
    auto cached = make(o);
    auto h1 = cached.fit(d->train, &d->val);
    o.cache_features = "off";
    auto plain = make(o);
    auto h2 = plain.fit(d->train, &d->val);
    EXPECT_EQ(h1[0].cache, "features");
    EXPECT_EQ(h2[0].cache, "none");
    expect_same_params(cached.head()->parameters(), plain.head()->parameters());
    ASSERT_EQ(h1.size(), h2.size());
    for (size_t e = 0; e < h1.size(); ++e) EXPECT_NEAR(h1[e].val_loss, h2[e].val_loss, 1e-5) << aug;
  }
}

TEST(Trainer, FineTuningWithPrefixCacheMatchesWithout) {
  auto d = make_data();
  auto o = base_options();
  o.epochs = 1;
  o.fine_tune_layers = 1;  // the last conv: the Sequential's prefix up to it is cached
  o.fine_tune_epochs = 2;
  o.fine_tune_lr = 0.005;
  o.augment = "flip";
  o.cache_features = "on";
  auto cached = make(o);
  auto h = cached.fit(d->train, &d->val);
  o.cache_features = "off";
  auto plain = make(o);
  plain.fit(d->train, &d->val);
  expect_same_params(cached.head()->parameters(), plain.head()->parameters());
  auto all = [](tlc::TransferClassifier& c) {
    std::vector<at::Tensor> v;
    for (const auto& p : c.backbone().module().parameters()) v.push_back(p);
    return v;
  };
  expect_same_params(all(cached), all(plain));
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].phase, "head");
  EXPECT_EQ(h[2].phase, "fine-tune");
  EXPECT_EQ(h[0].cache, "features");
  EXPECT_EQ(h[2].cache, "prefix");
  EXPECT_EQ(h[2].epoch, 3);
  EXPECT_DOUBLE_EQ(h[2].lr, 0.005);
}

TEST(Trainer, FineTuningChangesOnlyTheUnfrozenLayersAndKeepsBatchNormStatistics) {
  auto d = make_data();
  auto o = base_options();
  o.epochs = 1;
  o.fine_tune_layers = 2;  // tiny_bn: the last conv and the BatchNorm after it
  o.fine_tune_epochs = 2;
  o.fine_tune_lr = 0.01;
  auto original = tlc::Backbone::load(source("models/tiny_bn.pt"));
  auto clf = make(o, "models/tiny_bn.pt");
  clf.fit(d->train, &d->val);
  std::map<std::string, at::Tensor> before, after;
  for (const auto& p : original.module().named_parameters()) before[p.name] = p.value;
  for (const auto& b : original.module().named_buffers()) before[b.name] = b.value;
  for (const auto& p : clf.backbone().module().named_parameters()) after[p.name] = p.value;
  for (const auto& b : clf.backbone().module().named_buffers()) after[b.name] = b.value;
  for (const auto& [name, t] : before) {
    bool moved = !at::equal(t, after.at(name));
    bool unfrozen = name.rfind("body.4.", 0) == 0 || name == "body.5.weight" || name == "body.5.bias";
    EXPECT_EQ(moved, unfrozen) << name;  // running_mean/var of body.5 stay: BatchNorm in inference mode
  }
  // After fitting, every parameter is frozen again.
  EXPECT_FALSE(clf.backbone().any_trainable());
}

TEST(Trainer, TooManyFineTuneLayersIsAClearError) {
  auto b = tlc::Backbone::load(source("models/tiny_cnn.pt"));
  EXPECT_EQ(b.layers_with_parameters(), 2);
  try {
    b.unfreeze_last(3);
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("(2)"), std::string::npos) << e.what();
  }
}

TEST(Trainer, KeepBestRestoresTheBestValidationEpoch) {
  auto d = make_data();
  auto o = base_options();
  o.epochs = 6;
  o.dropout = 0;
  o.optimizer.name = "sgd";
  o.optimizer.lr = 3.0;  // large steps: the validation loss goes up and down
  o.keep = "best";
  auto clf = make(o);
  auto h = clf.fit(d->train, &d->val);
  double best = 1e9;
  for (auto& s : h) best = std::min(best, s.val_loss);
  EXPECT_NEAR(clf.score(d->val).loss, best, 1e-5);
  EXPECT_LT(best, h.back().val_loss) << "the settings should make the last epoch worse than the best";
}

TEST(Trainer, PatienceStopsEarly) {
  auto d = make_data();
  auto o = base_options();
  o.epochs = 10;
  o.optimizer.name = "sgd";
  o.optimizer.lr = 1e-12;  // nothing improves after the first epoch
  o.dropout = 0;
  o.patience = 2;
  auto clf = make(o);
  EXPECT_EQ(clf.fit(d->train, &d->val).size(), 3u);
}

TEST(Trainer, LearningRateSchedules) {
  auto d = make_data(6);
  auto o = base_options();
  o.epochs = 4;
  o.optimizer.lr = 0.1;
  o.lr_schedule = "cosine";
  auto h = make(o).fit(d->train, &d->val);
  EXPECT_DOUBLE_EQ(h[0].lr, 0.1);
  EXPECT_NEAR(h[2].lr, 0.05, 1e-12);
  o.lr_schedule = "step";
  o.lr_step_epochs = 2;
  o.lr_gamma = 0.5;
  h = make(o).fit(d->train, &d->val);
  EXPECT_DOUBLE_EQ(h[1].lr, 0.1);
  EXPECT_DOUBLE_EQ(h[2].lr, 0.05);
}

TEST(Trainer, ClassWeightsChangeTheLoss) {
  // An unbalanced set: class weights must change the training loss (and keep it finite).
  TempDir t;
  make_dataset(t.path(), 2, 4, 16, 7);
  for (int i = 4; i < 16; ++i)
    cv::imwrite((t.path() / "circle_red" / ("extra" + std::to_string(i) + ".png")).string(), class_image(0, 16, 500 + i));
  auto folder = tlc::list_image_folder(t.str());
  tlc::DecodeOptions dopt;
  dopt.size = 16;
  tlc::ScanReport r;
  auto set = tlc::ImageSet::scan(folder.items, dopt, 0, 1 << 30, false, r);
  auto o = base_options();
  o.dropout = 0;
  o.epochs = 1;
  tlc::Preprocess pre;
  pre.image_size = 16;
  auto run = [&](bool weighted) {
    o.class_weights = weighted;
    tlc::TransferClassifier clf(tlc::Backbone::load(source("models/tiny_cnn.pt")), folder.classes, pre, o);
    return clf.fit(set, nullptr)[0].loss;
  };
  double plain = run(false), weighted = run(true);
  EXPECT_TRUE(std::isfinite(weighted));
  EXPECT_GT(std::abs(plain - weighted), 1e-4);
}

TEST(Trainer, Bf16FrozenBackboneStaysCloseToFp32AndKeepsTheSavedModelFp32) {
  auto d = make_data();
  auto o = base_options();
  o.dropout = 0;
  o.precision = "fp32";
  auto a = make(o);
  o.precision = "bf16";  // forced on the CPU too
  auto b = make(o);
  // TorchScript's bf16 copy, or OpenVINO in bf16 on a CPU with bf16 hardware.
  EXPECT_NE(b.backbone().engine_name().find("bf16"), std::string::npos) << b.backbone().engine_name();
  auto x = a.normalize_batch(d->train.batch({0, 1, 2, 3}));
  auto fa = a.backbone().pooled_features(x), fb = b.backbone().pooled_features(x);
  EXPECT_EQ(fb.scalar_type(), at::kFloat);
  const double rel = ((fa - fb).norm() / fa.norm()).item<double>();
  EXPECT_LT(rel, 2e-2);   // bf16 operands: 1e-3 .. 1e-2 expected
  EXPECT_GT(rel, 0.0);    // and it really ran in bf16
  b.fit(d->train, &d->val);
  for (const auto& p : b.backbone().module().parameters()) EXPECT_EQ(p.scalar_type(), at::kFloat);
  EXPECT_THROW(make([] { auto o2 = base_options(); o2.precision = "fp8"; return o2; }()), tlc::Error);
}

// The tolerance the GPU check (tests/test_gpu.cpp) allows between a bf16 run on CUDA and an fp32 run on the
// CPU rests on this: the same training with bf16 frozen passes stays that close to fp32 on the CPU too.
TEST(Trainer, Bf16TrainingStaysWithinItsToleranceOfFp32) {
  auto fp32 = tiny_training_probabilities("cpu", "fp32"), bf16 = tiny_training_probabilities("cpu", "bf16");
  const double diff = (fp32 - bf16).abs().max().item<double>();
  std::cout << "bf16 vs fp32 training, max probability difference: " << diff << "\n";
  EXPECT_LT(diff, 1e-2);  // seen here: 1.8e-4
  EXPECT_GT(diff, 0.0);  // it really ran in bf16
}

// ImageSet::scan with a chunk sink hands over exactly the set's decodable images, in order, whether the set
// stays in memory or not, with chunks that do not divide the count and a broken file among them.
TEST(FirstPass, ScanSinkSeesEveryDecodableImageInOrder) {
  TempDir t;
  auto names = make_dataset(t.path(), 2, 9, 16, 3);
  write_text(t.path() / names[0] / "broken.jpg", "not a jpeg");
  auto folder = tlc::list_image_folder(t.str());
  tlc::DecodeOptions o;
  o.size = 16;
  for (int64_t budget : {int64_t{1} << 30, int64_t{0}}) {
    std::vector<at::Tensor> chunks;
    tlc::ChunkSink sink;
    sink.chunk = 4;
    int64_t last_done = 0;
    sink.fn = [&](const at::Tensor& px, int64_t done, int64_t total) {
      EXPECT_EQ(total, 19);
      EXPECT_GT(done, last_done);
      last_done = done;
      chunks.push_back(px.clone());
    };
    tlc::ScanReport r, r2;
    auto streamed = tlc::ImageSet::scan(folder.items, o, 2, budget, false, r, sink);
    auto plain = tlc::ImageSet::scan(folder.items, o, 2, budget, false, r2);
    ASSERT_EQ(r.broken.size(), 1u);
    ASSERT_EQ(streamed.size(), 18);
    ASSERT_EQ(streamed.in_memory(), budget > 0);
    EXPECT_EQ(chunks.size(), 5u);  // 19 files in chunks of 4
    EXPECT_EQ(last_done, 19);
    std::vector<int64_t> all(18);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_TRUE(at::equal(at::cat(chunks), plain.batch(all))) << "budget " << budget;
    EXPECT_TRUE(at::equal(streamed.batch(all), plain.batch(all)));
  }
}

// Features computed while the data is decoded give the same training as a separate extraction pass.
TEST(FirstPass, StreamedFeaturesTrainTheSameHead) {
  TempDir t;
  make_dataset(t.path(), 3, 10, 16, 5);
  auto folder = tlc::list_image_folder(t.str());
  auto split = tlc::split_stratified(folder.items, 3, 0.25, 0.0, 1);
  tlc::DecodeOptions dopt;
  dopt.size = 16;
  for (const char* aug : {"none", "flip"}) {
    auto o = base_options();
    o.augment = aug;
    auto a = make(o), b = make(o);
    tlc::ScanReport r;
    auto train_a = tlc::ImageSet::scan(split.train, dopt, 0, 1 << 30, false, r);
    auto val_a = tlc::ImageSet::scan(split.val, dopt, 0, 1 << 30, false, r);
    a.fit(train_a, &val_a);
    EXPECT_FALSE(a.used_first_pass());
    std::map<std::string, std::pair<int64_t, int64_t>> progress;  // label -> last (done, total)
    b.set_progress([&](const std::string& l, int64_t done, int64_t total) { progress[l] = {done, total}; });
    auto train_b = tlc::ImageSet::scan(split.train, dopt, 0, 1 << 30, false, r, b.first_pass_sink("train"));
    // The first pass reports progress (it is where a large data set spends its first minutes).
    ASSERT_EQ(progress.count("decoding + caching features"), 1u);
    EXPECT_EQ(progress["decoding + caching features"].first, static_cast<int64_t>(split.train.size()));
    EXPECT_EQ(progress["decoding + caching features"].second, static_cast<int64_t>(split.train.size()));
    auto val_b = tlc::ImageSet::scan(split.val, dopt, 0, 1 << 30, false, r, b.first_pass_sink("val"));
    auto hb = b.fit(train_b, &val_b);
    EXPECT_TRUE(b.used_first_pass()) << aug;
    EXPECT_EQ(hb.front().cache, "features");
    expect_same_params(a.head()->parameters(), b.head()->parameters());
  }
  // Nothing to stream when the head phase will not cache features.
  auto o = base_options();
  o.cache_features = "off";
  EXPECT_FALSE(static_cast<bool>(make(o).first_pass_sink("train").fn));

  // Fresh augmented views: only the validation set streams, and every epoch scores it from those features with
  // the losses of a run that computes them in a pass of its own.
  o = base_options();
  o.augment = "light";  // augment_views 0: a fresh view per image per epoch
  auto a = make(o), b = make(o);
  tlc::ScanReport r;
  auto train_a = tlc::ImageSet::scan(split.train, dopt, 0, 1 << 30, false, r);
  auto val_a = tlc::ImageSet::scan(split.val, dopt, 0, 1 << 30, false, r);
  const auto ha = a.fit(train_a, &val_a);
  EXPECT_FALSE(static_cast<bool>(b.first_pass_sink("train").fn));
  auto train_b = tlc::ImageSet::scan(split.train, dopt, 0, 1 << 30, false, r);
  auto val_b = tlc::ImageSet::scan(split.val, dopt, 0, 1 << 30, false, r, b.first_pass_sink("val"));
  std::set<std::string> labels;
  b.set_progress([&](const std::string& l, int64_t, int64_t) { labels.insert(l); });
  const auto hb = b.fit(train_b, &val_b);
  EXPECT_EQ(labels.count("caching features"), 0u) << "the streamed validation features were not used";
  EXPECT_NE(b.cache_note().find("validation images only"), std::string::npos) << b.cache_note();
  ASSERT_EQ(ha.size(), hb.size());
  for (size_t i = 0; i < ha.size(); ++i) EXPECT_NEAR(ha[i].val_loss, hb[i].val_loss, 1e-6) << "epoch " << i;
  expect_same_params(a.head()->parameters(), b.head()->parameters());
  // Over the memory budget nothing is kept, and every epoch scores through the backbone.
  o.cache_memory_mb = 0;
  auto c = make(o);
  auto val_c = tlc::ImageSet::scan(split.val, dopt, 0, 1 << 30, false, r, c.first_pass_sink("val"));
  const auto hc = c.fit(train_b, &val_c);
  EXPECT_EQ(c.cache_note(), "");
  for (size_t i = 0; i < ha.size(); ++i) EXPECT_NEAR(ha[i].val_loss, hc[i].val_loss, 1e-6) << "epoch " << i;
}

// Features computed once (pooled_features) and handed to another classifier (use_features) train the same
// head as that classifier's own extraction: what a model search's in-process cache relies on.
TEST(FirstPass, GivenFeaturesTrainTheSameHeadAsItsOwnExtraction) {
  DecodedSplit data(3, 10, 16, 5);
  const tlc::ImageSet &train = data.train, &val = data.val;
  auto o = base_options();
  o.augment = "flip";
  auto a = make(o), b = make(o), c = make(o);
  a.fit(train, &val);
  EXPECT_FALSE(a.used_first_pass());
  b.use_features("train", c.pooled_features(train), c.pooled_features(train, true));
  b.use_features("val", c.pooled_features(val));
  EXPECT_EQ(c.pooled_features(train).sizes(), (std::vector<int64_t>{train.size(), c.backbone().info().output_channels}));
  b.fit(train, &val);
  EXPECT_TRUE(b.used_first_pass());
  expect_same_params(a.head()->parameters(), b.head()->parameters());
  // Predicting from the same features equals predicting from the pixels (what the cache's scoring relies on).
  std::vector<int64_t> all(val.size());
  std::iota(all.begin(), all.end(), 0);
  EXPECT_TRUE(at::allclose(b.predict_proba_from_features(c.pooled_features(val)), b.predict_proba(val.batch(all)),
                           1e-5, 1e-6));
  EXPECT_THROW(b.predict_proba_from_features(at::zeros({2, 3})), tlc::Error);
  // Features of another set (a row count that does not match) are not used.
  auto d = make(o);
  d.use_features("train", c.pooled_features(val), c.pooled_features(val, true));
  d.fit(train, &val);
  EXPECT_FALSE(d.used_first_pass());
  expect_same_params(a.head()->parameters(), d.head()->parameters());
}
