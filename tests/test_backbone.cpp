// Backbone loading: freezing, eval mode, metadata, layers, clear errors.
#include <ATen/ATen.h>

#include "test_util.h"
#include "tlc/backbone.h"
#include "tlc/error.h"

using namespace tlc_test;

TEST(Backbone, LoadsFrozenInEvalModeWithMetadata) {
  auto b = tlc::Backbone::load(source("models/tiny_bn.pt"));
  EXPECT_EQ(b.info().arch, "tiny_bn");
  EXPECT_EQ(b.info().weights, "random");
  EXPECT_EQ(b.info().normalize, "minus1to1");
  EXPECT_EQ(b.info().output_channels, 16);
  EXPECT_GT(b.parameter_count(), 0);
  for (const auto& p : b.module().parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_FALSE(b.module().is_training());
  // Eval-mode BatchNorm uses the running statistics, so a batch and its single images give the same features.
  at::manual_seed(1);
  auto x = at::randn({4, 3, 20, 20});
  auto all = b.pooled_features(x);
  auto one = b.pooled_features(x.slice(0, 1, 2));
  EXPECT_TRUE(at::allclose(all.slice(0, 1, 2), one, 1e-5, 1e-6));
  EXPECT_EQ(all.sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_FALSE(all.requires_grad());
}

TEST(Backbone, ListsLayers) {
  auto b = tlc::Backbone::load(source("models/tiny_bn.pt"));
  auto layers = b.layers();
  ASSERT_GE(layers.size(), 6u);
  EXPECT_EQ(layers[0].type, "Conv2d");
  EXPECT_EQ(layers[0].params, 3 * 8 * 9 + 8);
  EXPECT_EQ(layers[1].type, "BatchNorm2d");
  int64_t total = 0;
  for (auto& l : layers) {
    total += l.params;
    EXPECT_FALSE(l.trainable);
  }
  EXPECT_EQ(total, b.parameter_count());
}

TEST(Backbone, MissingFileNamesTheExportScript) {
  try {
    tlc::Backbone::load("/nonexistent/backbone.pt");
    FAIL();
  } catch (const tlc::Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("/nonexistent/backbone.pt"), std::string::npos);
    EXPECT_NE(w.find("scripts/export_backbone.py"), std::string::npos);
  }
}

TEST(Backbone, NonTorchScriptFileIsAClearError) {
  TempDir t;
  write_text(t.path() / "state_dict.pt", "PK\x03\x04 definitely not a TorchScript archive");
  try {
    tlc::Backbone::load(t.str("state_dict.pt"));
    FAIL();
  } catch (const tlc::Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("not a TorchScript file"), std::string::npos) << w;
    EXPECT_NE(w.find("export_backbone.py"), std::string::npos) << w;
  }
}

TEST(Backbone, WrongOutputShapeIsAClearError) {
  // A TorchScript file that is a whole classifier (2-D output) is not a convolutional base.
  TempDir t;
  std::string py = t.str("make.py");
  write_text(py, "import torch\n"
                 "m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n"
                 "torch.jit.script(m).save('" + t.str("flat.pt") + "')\n");
  auto r = run_command(std::string("'") + TLC_PYTHON + "' '" + py + "'");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  try {
    tlc::Backbone::load(t.str("flat.pt"));
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[N,C,h,w]"), std::string::npos) << e.what();
  }
}

TEST(Backbone, AnyTrainableReadsTheParametersFlagsAsTheyAre) {
  // any_trainable() keeps the module's parameter tensors between calls (walking the module is slow): flags set
  // through unfreeze_last and directly on the module's tensors count, also in a copy of the backbone.
  tlc::Backbone b = tlc::Backbone::load(source("models/tiny_cnn.pt"));
  EXPECT_FALSE(b.any_trainable());
  EXPECT_TRUE(b.trainable_parameters().empty());
  const auto unfrozen = b.unfreeze_last(1);
  ASSERT_FALSE(unfrozen.empty());
  EXPECT_TRUE(b.any_trainable());
  EXPECT_EQ(b.trainable_parameters().size(), unfrozen.size());
  b.unfreeze_last(0);
  EXPECT_FALSE(b.any_trainable());
  at::Tensor first = *b.module().parameters().begin();
  first.set_requires_grad(true);
  EXPECT_TRUE(b.any_trainable());
  ASSERT_EQ(b.trainable_parameters().size(), 1u);
  EXPECT_TRUE(b.trainable_parameters()[0].is_same(first));
  tlc::Backbone copy = b;  // shares the module, as the class's copies do
  first.set_requires_grad(false);
  EXPECT_FALSE(copy.any_trainable());
  EXPECT_FALSE(b.any_trainable());
}

// Backbone::load_cached (each fit of the Python estimator loads its backbone through it).
TEST(Backbone, LoadCachedGivesIndependentCopiesOfOneLoad) {
  TempDir t;
  fs::copy_file(source("models/tiny_bn.pt"), t.path() / "b.pt");
  tlc::Backbone::clear_load_cache();
  auto a = tlc::Backbone::load_cached(t.str("b.pt"));
  auto b = tlc::Backbone::load_cached(t.str("b.pt"));
  EXPECT_EQ(b.info().arch, "tiny_bn");
  EXPECT_EQ(b.info().output_channels, 16);
  EXPECT_EQ(b.info().path, t.str("b.pt"));
  EXPECT_FALSE(b.module().is_training());
  at::manual_seed(2);
  const auto x = at::randn({2, 3, 20, 20});
  const auto before = b.pooled_features(x);
  EXPECT_TRUE(at::equal(a.pooled_features(x), before));
  EXPECT_TRUE(at::equal(tlc::Backbone::load(t.str("b.pt")).pooled_features(x), before));
  // Fine-tuning a copy from the cache (trainable parameters, changed weights) leaves the others and later
  // copies alone.
  auto trained = b.unfreeze_last(1);
  ASSERT_FALSE(trained.empty());
  {
    torch::NoGradGuard ng;
    for (auto p : b.module().parameters()) p.add_(0.5);
  }
  EXPECT_FALSE(at::equal(b.pooled_features(x), before));
  EXPECT_TRUE(at::equal(a.pooled_features(x), before));
  auto c = tlc::Backbone::load_cached(t.str("b.pt"));
  EXPECT_TRUE(at::equal(c.pooled_features(x), before));
  for (const auto& p : c.module().parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_EQ(tlc::Backbone::clear_load_cache(), 1u);
}

TEST(Backbone, LoadCachedReloadsARewrittenFileAndReportsAMissingOne) {
  TempDir t;
  const auto file = t.path() / "b.pt";
  fs::copy_file(source("models/tiny_bn.pt"), file);
  tlc::Backbone::clear_load_cache();
  EXPECT_EQ(tlc::Backbone::load_cached(file.string()).info().arch, "tiny_bn");
  fs::copy_file(source("models/tiny_cnn.pt"), file, fs::copy_options::overwrite_existing);
  EXPECT_EQ(tlc::Backbone::load_cached(file.string()).info().arch, "tiny_cnn");
  EXPECT_EQ(tlc::Backbone::clear_load_cache(), 1u);  // the old version of the file went out
  fs::remove(file);
  try {
    tlc::Backbone::load_cached(file.string());
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos) << e.what();
  }
}
