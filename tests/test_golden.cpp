// Golden parity with PyTorch (scripts/make_golden.py): decoded pixels, normalized tensors, features,
// logits, loss and the head weights after one RMSprop step, on the committed tiny backbone.
#include <ATen/ATen.h>
#include <torch/script.h>

#include "test_util.h"
#include "tlc/image_io.h"
#include "tlc/trainer.h"

using namespace tlc_test;

namespace {

// Largest |a-b| / (atol + rtol*|b|) over the tensor, with rtol = 1e-5 (fp32 parity) and atol = 1e-6 so
// that values that cancel to nearly zero (x/127.5-1 at x=127) are judged on the scale of their inputs.
// A result below 1 means every element is within tolerance.
double rel_error(const at::Tensor& a, const at::Tensor& b) {
  auto excess = (a - b).abs() / (b.abs() * 1e-5 + 1e-6);
  auto worst = excess.flatten().argmax().item<int64_t>();
  double v = excess.flatten()[worst].item<double>();
  if (v >= 1.0)
    std::cerr << "first worst mismatch at flat index " << worst << ": " << a.flatten()[worst].item<double>()
              << " vs " << b.flatten()[worst].item<double>() << "\n";
  return v * 1e-5;  // in units of rtol, so that the assertions read "< 1e-5"
}

struct Golden {
  torch::jit::Module m = torch::jit::load(source("tests/golden/golden_tiny.pt"));
  at::Tensor get(const char* name) { return m.attr(name).toTensor(); }
};

}  // namespace

TEST(Golden, DecodedPixelsAreExact) {
  Golden g;
  auto expected = g.get("pixels");
  for (int i = 0; i < 4; ++i) {
    at::Tensor got = at::empty({16, 16, 3}, at::kByte);
    tlc::DecodeOptions o;
    o.size = 16;
    auto st = tlc::load_resized(source("tests/golden/img" + std::to_string(i) + ".png"), got.data_ptr<uint8_t>(), o);
    ASSERT_TRUE(st.ok) << st.error;
    EXPECT_TRUE(at::equal(got, expected[i])) << "image " << i;
  }
}

TEST(Golden, NormalizedTensorsMatch) {
  Golden g;
  auto px = g.get("pixels");
  auto m1 = tlc::normalize(px, tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::minus1to1), at::kFloat, tlc::Layout::nchw);
  auto in = tlc::normalize(px, tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::imagenet), at::kFloat, tlc::Layout::nchw);
  EXPECT_LT(rel_error(m1, g.get("norm_minus1to1")), 1e-5);
  EXPECT_LT(rel_error(in, g.get("norm_imagenet")), 1e-5);
}

TEST(Golden, FeaturesLogitsAndOneRmspropStepMatch) {
  Golden g;
  tlc::TrainOptions o;
  o.device = "cpu";
  o.precision = "fp32";  // PyTorch's golden figures are fp32; auto is bf16 on CPUs with bf16 hardware
  o.optimizer.name = "rmsprop";
  o.optimizer.lr = 0.01;
  tlc::Preprocess pre;
  pre.image_size = 16;
  tlc::TransferClassifier clf(tlc::Backbone::load(source("models/tiny_cnn.pt")), {"a", "b", "c"}, pre, o);
  auto x = clf.normalize_batch(g.get("pixels"));
  auto feats = clf.backbone().pooled_features(x);
  EXPECT_LT(rel_error(feats, g.get("features")), 1e-5);
  {
    torch::NoGradGuard ng;
    clf.head()->fc->weight.copy_(g.get("w0"));
    clf.head()->fc->bias.copy_(g.get("b0"));
  }
  auto opt = tlc::make_optimizer(o.optimizer, clf.head()->parameters());
  auto step = clf.train_step(x, g.get("labels"), *opt);
  EXPECT_LT(rel_error(step.logits, g.get("logits")), 1e-5);
  EXPECT_NEAR(step.loss, g.get("loss").item<double>(), 1e-5 * g.get("loss").item<double>());
  EXPECT_LT(rel_error(clf.head()->fc->weight.detach(), g.get("w1")), 1e-5);
  EXPECT_LT(rel_error(clf.head()->fc->bias.detach(), g.get("b1")), 1e-5);
  // The step moved the weights: the comparison above is not trivially true.
  EXPECT_GT((g.get("w1") - g.get("w0")).abs().max().item<double>(), 1e-3);
}

TEST(Golden, OneFineTuningStepMatches) {
  Golden g;
  tlc::TrainOptions o;
  o.device = "cpu";
  tlc::Preprocess pre;
  pre.image_size = 16;
  tlc::TransferClassifier clf(tlc::Backbone::load(source("models/tiny_cnn.pt")), {"a", "b", "c"}, pre, o);
  {
    torch::NoGradGuard ng;
    clf.head()->fc->weight.copy_(g.get("w0"));
    clf.head()->fc->bias.copy_(g.get("b0"));
  }
  auto conv = clf.backbone().unfreeze_last(1);  // body.3, the last conv
  ASSERT_EQ(conv.size(), 2u);
  auto conv_before = conv[0].detach().clone();
  auto params = clf.head()->parameters();
  params.insert(params.end(), conv.begin(), conv.end());
  tlc::OptimizerOptions oo;
  oo.lr = 0.01;
  auto opt = tlc::make_optimizer(oo, params);
  auto step = clf.train_step(clf.normalize_batch(g.get("pixels")), g.get("labels"), *opt);
  EXPECT_NEAR(step.loss, g.get("ft_loss").item<double>(), 1e-5 * g.get("ft_loss").item<double>());
  EXPECT_LT(rel_error(clf.head()->fc->weight.detach(), g.get("ft_w1")), 1e-5);
  EXPECT_LT(rel_error(clf.head()->fc->bias.detach(), g.get("ft_b1")), 1e-5);
  EXPECT_LT(rel_error(conv[0].detach(), g.get("ft_conv_w1")), 1e-5);
  EXPECT_LT(rel_error(conv[1].detach(), g.get("ft_conv_b1")), 1e-5);
  EXPECT_GT((conv[0].detach() - conv_before).abs().max().item<double>(), 1e-4);  // the layer did move
}
