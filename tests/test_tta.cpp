// Test-time augmentation: the blend, ModelFile's TTA against the same views computed by hand, views that do
// not depend on the batch, the trainer's TTA against the saved model's, and the CLI's --tta.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tiny_training.h"
#include "tlc/augment.h"
#include "tlc/model_file.h"
#include "tlc/trainer.h"

using namespace tlc_test;

namespace {

// A trained tiny model (trained with `augment`) saved to dir/model.pt, and its classifier.
struct Trained {
  DecodedSplit data{3, 8, 16, 11};
  TempDir dir;
  std::unique_ptr<tlc::TransferClassifier> clf;
  explicit Trained(const std::string& augment) {
    tlc::Preprocess pre;
    pre.image_size = 16;
    tlc::TrainOptions o;
    o.device = "cpu";
    o.precision = "fp32";
    o.epochs = 2;
    o.optimizer.name = "adam";
    o.optimizer.lr = 0.01;
    o.augment = augment;
    o.augment_views = 2;
    clf = std::make_unique<tlc::TransferClassifier>(tlc::Backbone::load(source("models/tiny_cnn.pt")), data.classes, pre, o);
    clf->fit(data.train, nullptr);
    clf->save(dir.str("model.pt"));
  }
};

}  // namespace

TEST(Tta, BlendIsFastaisQuarterPlain) {
  const at::Tensor plain = at::tensor({0.8f, 0.2f}).reshape({1, 2});
  const at::Tensor aug = at::tensor({0.4f, 0.6f}).reshape({1, 2});
  const at::Tensor b = tlc::tta_blend(plain, aug);
  EXPECT_NEAR(b[0][0].item<float>(), 0.25 * 0.8 + 0.75 * 0.4, 1e-6);
  EXPECT_NEAR(b[0][1].item<float>(), 0.25 * 0.2 + 0.75 * 0.6, 1e-6);
}

TEST(Tta, ModelFileBlendsTheViewsDrawnFromEachImage) {
  Trained t("light");
  tlc::ModelFile m = tlc::ModelFile::load(t.dir.str("model.pt"));
  EXPECT_EQ(m.meta().augment, "flip,rotate=10,zoom=1.1,translate=0.05");
  const at::Tensor images = t.data.train.batch({0, 1, 2, 3});
  const at::Tensor plain = m.predict_proba(images);
  const tlc::AugmentSpec spec = tlc::tta_augmentation(m.meta(), "");
  EXPECT_TRUE(spec == tlc::parse_augment("light"));
  m.set_tta(3, spec);
  at::Tensor plain_out;
  const at::Tensor got = m.predict_proba(images, &plain_out);
  EXPECT_TRUE(at::allclose(plain_out, plain));
  // By hand: the views of each image from (seed 0, its pixels, view), through the file's own module.
  at::Tensor sum = at::zeros_like(plain);
  for (int v = 0; v < 3; ++v) {
    std::vector<tlc::ViewParams> p;
    for (int64_t i = 0; i < images.size(0); ++i) p.push_back(tlc::draw_view(spec, 16, 16, 0, tlc::pixel_key(images[i]), v));
    const at::Tensor x = tlc::augment(images, tlc::view_tensor(p), m.spec(), at::kFloat, tlc::Layout::nchw);
    sum += at::softmax(m.logits(x), 1);
  }
  const at::Tensor want = 0.25 * plain + 0.75 * sum / 3;
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  EXPECT_GT((got - plain).abs().max().item<double>(), 1e-4);  // the views did change the prediction
  // An image's views do not depend on the batch it comes in.
  const at::Tensor alone = m.predict_proba(images.slice(0, 2, 3));
  EXPECT_LT((alone[0] - got[2]).abs().max().item<double>(), 1e-6);
  // The trainer's TTA (the Python estimator's) draws the same views.
  const at::Tensor from_clf = t.clf->predict_proba_tta(images, 3, spec);
  EXPECT_LT((from_clf - got).abs().max().item<double>(), 1e-5);
  // A model trained without augmentation takes flips.
  tlc::ModelMeta none;
  EXPECT_TRUE(tlc::tta_augmentation(none, "").flip_only());
  EXPECT_TRUE(tlc::tta_augmentation(none, "keras") == tlc::parse_augment("keras"));
}

TEST(Tta, CliEvaluateReportsTheGainAndPredictTakesTheFlag) {
  TempDir t;
  make_dataset(t.path() / "data", 3, 10, 16);
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"),
                                 "--image-size 16 --epochs 2 --optimizer adam --lr 0.01 --augment fastai "
                                 "--augment-views 2 --test-split 0.3 --val-split 0.2 --precision fp32"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("augmentation: flip,rotate=10,zoom=1.1,warp=0.2,brightness=0.2,contrast=0.2,p=0.75"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("feature cache: "), std::string::npos) << r.out;
  const auto cfg = nlohmann::json::parse(read_text(t.path() / "run" / "config.json"));
  EXPECT_EQ(cfg["training"]["augment_views"], 2) << cfg.dump();
  EXPECT_EQ(cfg["training"]["augment"], "flip,rotate=10,zoom=1.1,warp=0.2,brightness=0.2,contrast=0.2,p=0.75");
  auto e = run_command(tlc_cmd("evaluate " + q(t.str("run")) + " --json --tta 2 --precision fp32"));
  ASSERT_EQ(e.exit_code, 0) << e.out;
  const auto j = nlohmann::json::parse(e.out.substr(e.out.find('{')));
  ASSERT_TRUE(j["tta"].is_object()) << e.out;
  EXPECT_EQ(j["tta"]["views"], 2);
  EXPECT_NEAR(j["tta"]["accuracy_points"].get<double>(),
              100.0 * (j["accuracy"].get<double>() - j["tta"]["plain_accuracy"].get<double>()), 1e-9);
  auto p = run_command(tlc_cmd("predict " + q(t.str("run")) + " " + q(t.str("data")) + " --tta 2 --json"));
  ASSERT_EQ(p.exit_code, 0) << p.out;
  EXPECT_NE(p.out.find("test-time augmentation: 2 view(s)"), std::string::npos) << p.out;
  auto bad = run_command(tlc_cmd("predict " + q(t.str("run")) + " " + q(t.str("data")) + " --tta-augment spin=3 --tta 2"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("spin=3"), std::string::npos) << bad.out;
}
