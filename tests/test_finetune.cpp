// Fine-tuning and the feature cache through the CLI: `tlc train --fine-tune-layers`, `tlc finetune RUN`,
// --cache-dir.
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tiny_training.h"
#include "tlc/model_file.h"

using namespace tlc_test;

namespace {


at::Tensor backbone_param(const std::string& model_or_backbone, const std::string& name, bool is_model) {
  auto m = torch::jit::load(model_or_backbone);
  if (is_model) m = m.attr("backbone").toModule();
  for (const auto& p : m.named_parameters())
    if (p.name == name) return p.value.detach().clone();
  ADD_FAILURE() << "no parameter " << name;
  return {};
}

}  // namespace

TEST(Finetune, TrainThenFinetuneContinuesTheRunAndSavesTheTunedBackbone) {
  TempDir t;
  make_dataset(t.path() / "data", 3, 10, 16);
  const std::string tiny = source("models/tiny_cnn.pt");
  auto r = run_command(train_cmd(t.str("data"), tiny, t.str("run"), "--image-size 16 --epochs 2 --optimizer adam --lr 0.01"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("(cached features)"), std::string::npos) << r.out;
  auto f = run_command(tlc_cmd("finetune " + q(t.str("run")) + " --fine-tune-layers 1 --fine-tune-epochs 2 --fine-tune-lr 0.001"));
  ASSERT_EQ(f.exit_code, 0) << f.out;
  EXPECT_NE(f.out.find("epoch 3/4 [fine-tune]"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("(cached frozen prefix)"), std::string::npos) << f.out;
  std::string history = read_text(t.path() / "run" / "history.csv");
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 5) << history;
  EXPECT_NE(history.find("\n4,fine-tune,"), std::string::npos) << history;
  // The unfrozen last conv (body.3) changed in the saved model, the first conv (body.0) did not.
  const std::string model = t.str("run/model.pt");
  EXPECT_FALSE(at::equal(backbone_param(model, "body.3.weight", true), backbone_param(tiny, "body.3.weight", false)));
  EXPECT_TRUE(at::equal(backbone_param(model, "body.0.weight", true), backbone_param(tiny, "body.0.weight", false)));
  // And the tuned model still predicts.
  auto p = run_command(tlc_cmd("predict " + q(model) + " " + q(t.str("data/circle_red/img0.png"))));
  EXPECT_EQ(p.exit_code, 0) << p.out;
}

TEST(Finetune, BothPhasesInOneCommand) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_bn.pt"), t.str("run"),
                                 "--image-size 16 --epochs 2 --fine-tune-layers 2 --fine-tune-epochs 2 --optimizer adam --lr 0.01"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("epoch 4/4 [fine-tune]"), std::string::npos) << r.out;
}

TEST(Finetune, ClearErrors) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 6, 16);
  auto r = run_command(tlc_cmd("train " + q(t.str("data")) + " --backbone " + q(source("models/tiny_cnn.pt")) +
                           " --fine-tune-layers 5 --fine-tune-epochs 1 --image-size 16"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("has with parameters (2)"), std::string::npos) << r.out;
  auto ok = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"), "--image-size 16 --epochs 1"));
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  make_dataset(t.path() / "other", 3, 6, 16);
  auto m = run_command(tlc_cmd("finetune " + q(t.str("run")) + " --fine-tune-layers 1 --data " + q(t.str("other"))));
  EXPECT_NE(m.exit_code, 0);
  EXPECT_NE(m.out.find("was trained on"), std::string::npos) << m.out;
  auto n = run_command(tlc_cmd("finetune " + q(t.str("data")) + " --fine-tune-layers 1"));
  EXPECT_NE(n.exit_code, 0);
  EXPECT_NE(n.out.find("not a tlc run folder"), std::string::npos) << n.out;
}

TEST(Finetune, DiskFeatureCacheIsReusedAndInvalidated) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  auto train = [&](const std::string& out) {
    auto r = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str(out),
                                   "--image-size 16 --epochs 2 --cache-dir " + q(t.str("cache"))));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return read_text(t.path() / out / "metrics.json");
  };
  auto count = [&] {
    int n = 0;
    for (auto& e : fs::directory_iterator(t.path() / "cache")) n += e.path().extension() == ".pt";
    return n;
  };
  std::string m1 = train("a");
  EXPECT_EQ(count(), 1);
  std::string m2 = train("b");
  EXPECT_EQ(count(), 1);  // reused
  EXPECT_EQ(m1, m2);      // same results from the cached features
  // Changing an image changes the key.
  cv::imwrite((t.path() / "data" / "circle_red" / "img0.png").string(), class_image(1, 16, 4242));
  train("c");
  EXPECT_EQ(count(), 2);
  // Another resize mode gives other pixels: other features, another key (it reused stretch's before).
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("d"),
                                 "--image-size 16 --epochs 2 --resize crop --cache-dir " + q(t.str("cache"))));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(count(), 3);
}

// Review finding: with a reduced-precision frozen path (bf16, the default on CUDA) the final scores of a
// fine-tuning run came from the weights before fine-tuning. The test metrics a run writes must be those of
// the model it saves, as `tlc evaluate` measures them (in fp32: within bf16's tolerance).
TEST(Finetune, Bf16RunReportsTheMetricsOfTheModelItSaves) {
  auto c = bf16_finetune_then_evaluate("--precision bf16", "");
  ASSERT_FALSE(c.metrics.is_null() || c.evaluation.is_null()) << c.log;
  EXPECT_EQ(c.metrics["test"]["count"].get<int64_t>(), c.evaluation["count"].get<int64_t>());
  EXPECT_NEAR(c.metrics["test"]["loss"].get<double>(), c.evaluation["loss"].get<double>(), 0.02) << c.log;
}
