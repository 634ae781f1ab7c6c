// Training with augmentation: the K-view feature cache gives the training that recomputing the same views does
// (head and fine-tuning with the prefix cache), fresh views are drawn from the seed, the view count and the
// transforms key the disk cache, and the choice reaches the model file.
#include <ATen/ATen.h>

#include <filesystem>

#include "test_util.h"
#include "tiny_training.h"
#include "tlc/error.h"
#include "tlc/model_file.h"
#include "tlc/trainer.h"

using namespace tlc_test;

namespace {

tlc::TransferClassifier make(const tlc::TrainOptions& o, const std::vector<std::string>& classes) {
  tlc::Preprocess pre;
  pre.image_size = 16;
  return tlc::TransferClassifier(tlc::Backbone::load(source("models/tiny_cnn.pt")), classes, pre, o);
}

tlc::TrainOptions options(const std::string& augment, int views) {
  tlc::TrainOptions o;
  o.device = "cpu";
  o.precision = "fp32";
  o.epochs = 3;
  o.batch_size = 8;
  o.optimizer.name = "adam";
  o.optimizer.lr = 0.01;
  o.dropout = 0.3;
  o.augment = augment;
  o.augment_views = views;
  return o;
}

std::vector<at::Tensor> params_of(tlc::TransferClassifier& c) {
  std::vector<at::Tensor> v = c.head()->parameters();
  for (const auto& p : c.backbone().module().parameters()) v.push_back(p.detach().clone());
  return v;
}

double max_diff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

size_t files_in(const fs::path& dir) {
  size_t n = 0;
  if (fs::exists(dir))
    for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".pt";
  return n;
}

}  // namespace

TEST(AugmentTraining, KViewCacheTrainsAsRecomputingTheSameViews) {
  DecodedSplit d(3, 12, 16, 5);
  auto o = options("fastai", 3);
  o.cache_features = "on";
  auto cached = make(o, d.classes);
  auto h1 = cached.fit(d.train, &d.val);
  EXPECT_NE(cached.cache_note().find("4 views (plain + 3 augmented)"), std::string::npos) << cached.cache_note();
  o.cache_features = "off";  // the same views, computed through the backbone every epoch
  auto plain = make(o, d.classes);
  auto h2 = plain.fit(d.train, &d.val);
  ASSERT_EQ(h1.size(), 3u);
  EXPECT_EQ(h1[0].cache, "features");
  EXPECT_EQ(h2[0].cache, "none");
  EXPECT_LT(max_diff(params_of(cached), params_of(plain)), 1e-5);
  for (size_t e = 0; e < h1.size(); ++e) EXPECT_NEAR(h1[e].val_loss, h2[e].val_loss, 1e-5);
  // And the views change the training: without augmentation the head ends elsewhere.
  auto none = make(options("none", 0), d.classes);
  none.fit(d.train, &d.val);
  EXPECT_GT(max_diff(params_of(cached), params_of(none)), 1e-4);
}

TEST(AugmentTraining, FineTuningCachesThePoolInThePrefixCache) {
  DecodedSplit d(3, 12, 16, 6);
  auto o = options("light", 2);
  o.epochs = 1;
  o.fine_tune_layers = 1;
  o.fine_tune_epochs = 2;
  o.fine_tune_lr = 0.005;
  o.cache_features = "on";
  auto cached = make(o, d.classes);
  auto h = cached.fit(d.train, &d.val);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[2].cache, "prefix");
  EXPECT_NE(cached.cache_note().find("prefix cache"), std::string::npos) << cached.cache_note();
  o.cache_features = "off";
  auto plain = make(o, d.classes);
  plain.fit(d.train, &d.val);
  EXPECT_LT(max_diff(params_of(cached), params_of(plain)), 1e-5);
  // Fresh views cannot be cached: fine-tuning with them runs the whole backbone every epoch.
  o.augment_views = 0;
  o.cache_features = "auto";
  auto fresh = make(o, d.classes);
  auto hf = fresh.fit(d.train, &d.val);
  for (const auto& s : hf) EXPECT_EQ(s.cache, "none") << s.phase;
}

TEST(AugmentTraining, FreshViewsComeFromTheSeed) {
  DecodedSplit d(3, 8, 16, 7);
  auto run = [&](uint64_t seed) {
    auto o = options("keras", 0);
    o.seed = seed;
    auto c = make(o, d.classes);
    auto h = c.fit(d.train, nullptr);
    EXPECT_EQ(h[0].cache, "none");  // a new view every epoch: nothing to cache
    return params_of(c);
  };
  const auto a = run(1), b = run(1), c = run(2);
  EXPECT_EQ(max_diff(a, b), 0.0);
  EXPECT_GT(max_diff(a, c), 1e-4);
}

TEST(AugmentTraining, FreshViewsScoreTheValidationSetFromFeaturesComputedOnce) {
  // The validation images are never augmented: with fresh training views their features are computed once and
  // every epoch scores them from there, with the same losses as a pass through the backbone each epoch.
  DecodedSplit d(3, 8, 16, 7);
  auto o = options("keras", 0);
  o.epochs = 4;
  auto cached = make(o, d.classes);
  const auto hc = cached.fit(d.train, &d.val);
  EXPECT_NE(cached.cache_note().find("validation images only"), std::string::npos) << cached.cache_note();
  o.cache_features = "off";
  auto plain = make(o, d.classes);
  const auto hp = plain.fit(d.train, &d.val);
  EXPECT_EQ(plain.cache_note(), "");
  ASSERT_EQ(hc.size(), hp.size());
  for (size_t i = 0; i < hc.size(); ++i) {
    EXPECT_EQ(hc[i].cache, "none");  // the training views are still fresh
    EXPECT_NEAR(hc[i].val_loss, hp[i].val_loss, 1e-6) << "epoch " << i;
    EXPECT_DOUBLE_EQ(hc[i].val_acc, hp[i].val_acc) << "epoch " << i;
  }
  EXPECT_LT(max_diff(params_of(cached), params_of(plain)), 1e-6);
}

TEST(AugmentTraining, TransformsAndViewCountKeyTheDiskCache) {
  DecodedSplit d(3, 8, 16, 8);
  TempDir cache;
  auto run = [&](const std::string& aug, int views) {
    auto o = options(aug, views);
    o.epochs = 1;
    o.cache_dir = cache.str();
    auto c = make(o, d.classes);
    c.fit(d.train, &d.val);
    return params_of(c);
  };
  const auto first = run("light", 2);
  EXPECT_EQ(files_in(cache.path()), 1u);
  EXPECT_LT(max_diff(run("light", 2), first), 1e-6);  // read back, same training
  EXPECT_EQ(files_in(cache.path()), 1u);
  run("light", 3);
  EXPECT_EQ(files_in(cache.path()), 2u);
  run("light,rotate=20", 3);
  EXPECT_EQ(files_in(cache.path()), 3u);
}

TEST(AugmentTraining, BadSettingsAreErrorsAndTheChoiceIsSaved) {
  DecodedSplit d(3, 8, 16, 9);
  EXPECT_THROW(make(options("rotate=abc", 0), d.classes), tlc::Error);
  EXPECT_THROW(make(options("light", -1), d.classes), tlc::Error);
  auto o = options("flip,rotate=10,lighting=0.2", 2);
  o.epochs = 1;
  auto c = make(o, d.classes);
  c.fit(d.train, nullptr);
  TempDir t;
  c.save(t.str("model.pt"));
  EXPECT_EQ(tlc::ModelFile::load(t.str("model.pt")).meta().augment, "flip,rotate=10,brightness=0.2,contrast=0.2");
}
