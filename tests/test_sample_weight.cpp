// Per-image loss weights (the Python estimator's fit(sample_weight=)): on one full batch, a weight of 0 trains
// the head as if the image were absent, a weight of 2 as if it were there twice, and weights that are the same
// for every image change nothing, with or without class weights. Bad weights are errors that say which image.
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <string>

#include "test_util.h"
#include "tlc/error.h"
#include "tlc/trainer.h"

using namespace tlc_test;

namespace {

constexpr int kSize = 16;

// n random 16x16 images with labels 0..2 (a fixed draw per seed).
tlc::ImageSet random_set(int n, int seed, std::vector<int64_t>* labels_out = nullptr) {
  at::manual_seed(seed);
  at::Tensor pixels = at::randint(0, 256, {n, kSize, kSize, 3}, at::kByte);
  std::vector<int64_t> labels;
  for (int i = 0; i < n; ++i) labels.push_back(i % 3);
  if (labels_out) *labels_out = labels;
  return tlc::ImageSet::from_pixels(pixels, labels, "test");
}

// The rows `keep` of a set, in that order (an index may repeat: a duplicated image).
tlc::ImageSet rows(const tlc::ImageSet& s, const std::vector<int64_t>& labels, const std::vector<int64_t>& keep) {
  std::vector<int64_t> l;
  for (int64_t i : keep) l.push_back(labels[i]);
  return tlc::ImageSet::from_pixels(s.pixels().index_select(0, at::tensor(keep, at::kLong)).contiguous(), l, "test");
}

tlc::TrainOptions full_batch_sgd() {
  tlc::TrainOptions o;
  o.device = "cpu";
  o.epochs = 4;
  o.batch_size = 64;  // one batch holds every image: the gradient does not depend on how they were shuffled
  o.optimizer.name = "sgd";
  o.optimizer.lr = 0.05;
  o.dropout = 0;
  o.seed = 3;  // the same initial head for every run
  // fp32: the compared runs pass other batch sizes through the backbone, and bf16 kernels may differ by batch.
  o.precision = "fp32";
  return o;
}

std::vector<at::Tensor> train_head(const tlc::ImageSet& set, tlc::TrainOptions o = full_batch_sgd()) {
  tlc::Preprocess pre;
  pre.image_size = kSize;
  tlc::TransferClassifier clf(tlc::Backbone::load(source("models/tiny_cnn.pt")), {"a", "b", "c"}, pre, o);
  clf.fit(set, nullptr);
  std::vector<at::Tensor> p;
  for (const auto& t : clf.head()->parameters()) p.push_back(t.detach().clone());
  return p;
}

// The error set_weights throws for `w` (empty when it throws none).
std::string weights_error(tlc::ImageSet& set, std::vector<float> w) {
  try {
    set.set_weights(std::move(w));
  } catch (const tlc::Error& e) {
    return e.what();
  }
  return "";
}

double max_diff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

}  // namespace

TEST(SampleWeight, ZeroWeightTrainsAsIfTheImageWereAbsent) {
  std::vector<int64_t> labels;
  tlc::ImageSet all = random_set(12, 1, &labels);
  std::vector<float> w(12, 1.0f);
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < 12; ++i) {
    if (i == 4 || i == 9) w[i] = 0.0f;
    else kept.push_back(i);
  }
  const auto unweighted = train_head(all);
  all.set_weights(w);
  ASSERT_TRUE(all.weighted());
  const auto weighted = train_head(all);
  const auto without = train_head(rows(all, labels, kept));
  EXPECT_LT(max_diff(weighted, without), 1e-5);
  EXPECT_GT(max_diff(weighted, unweighted), 1e-4);  // the weights did change the fit
}

TEST(SampleWeight, WeightTwoTrainsAsIfTheImageWereThereTwice) {
  std::vector<int64_t> labels;
  tlc::ImageSet all = random_set(12, 2, &labels);
  std::vector<float> w(12, 1.0f);
  std::vector<int64_t> twice;
  for (int64_t i = 0; i < 12; ++i) twice.push_back(i);
  for (int64_t i : {1, 5, 6}) {
    w[i] = 2.0f;
    twice.push_back(i);
  }
  all.set_weights(w);
  EXPECT_LT(max_diff(train_head(all), train_head(rows(all, labels, twice))), 1e-5);
}

TEST(SampleWeight, EqualWeightsChangeNothingWithOrWithoutClassWeights) {
  for (bool balanced : {false, true}) {
    // An unbalanced set (labels 0,1,2,0,1,2,... then extra 0s) so that the class weights matter.
    std::vector<int64_t> labels;
    tlc::ImageSet base = random_set(10, 4, &labels);
    std::vector<int64_t> idx = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 3, 6, 9};
    tlc::ImageSet set = rows(base, labels, idx);
    auto o = full_batch_sgd();
    o.class_weights = balanced;
    const auto plain = train_head(set, o);
    set.set_weights(std::vector<float>(idx.size(), 3.0f));
    EXPECT_LT(max_diff(train_head(set, o), plain), 1e-5) << "class weights " << balanced;
  }
}

TEST(SampleWeight, BadWeightsAreErrorsThatNameTheImage) {
  tlc::ImageSet set = random_set(4, 5);
  EXPECT_NE(weights_error(set, {1, 1, 1}).find("3 weights for 4 images"), std::string::npos);
  EXPECT_NE(weights_error(set, {1, -1, 1, 1}).find("weight 1 of"), std::string::npos);
  EXPECT_NE(weights_error(set, {1, 1, std::numeric_limits<float>::quiet_NaN(), 1}).find("finite"), std::string::npos);
  EXPECT_NE(weights_error(set, {0, 0, 0, 0}).find("all weights are 0"), std::string::npos);
  EXPECT_FALSE(set.weighted());  // a rejected list leaves the set unweighted
  set.set_weights({1, 2, 3, 4});
  EXPECT_TRUE(set.weighted());
  EXPECT_TRUE(at::equal(set.weights({3, 0}), at::tensor(std::vector<float>{4, 1})));
  set.set_weights({});  // no weights again
  EXPECT_FALSE(set.weighted());
}
