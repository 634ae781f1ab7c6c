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

