// The saved model: round trip, self-contained, atomic, clear errors.
#include <ATen/ATen.h>

#include "test_util.h"
#include "tlc/error.h"
#include "tlc/model_file.h"
#include "tlc/trainer.h"

using namespace tlc_test;

namespace {

tlc::TransferClassifier make_classifier(int64_t hidden, tlc::NormalizeMode mode) {
  tlc::TrainOptions o;
  o.hidden = hidden;
  o.device = "cpu";
  o.precision = "fp32";  // the file's own module runs in fp32; auto is bf16 on CPUs with bf16 hardware
  tlc::Preprocess pre;
  pre.image_size = 24;
  pre.mode = mode;
  return tlc::TransferClassifier(tlc::Backbone::load(source("models/tiny_cnn.pt")), {"ant", "bee", "cow"}, pre, o);
}

}  // namespace

TEST(ModelFile, RoundTripGivesTheSameProbabilities) {
  for (int64_t hidden : {0, 5}) {
    for (auto mode : {tlc::NormalizeMode::minus1to1, tlc::NormalizeMode::caffe}) {
      TempDir t;
      auto clf = make_classifier(hidden, mode);
      at::manual_seed(9);
      auto u8 = at::randint(0, 256, {3, 24, 24, 3}, at::kByte);
      auto expected = clf.predict_proba(u8);
      clf.save(t.str("model.pt"));
      auto m = tlc::ModelFile::load(t.str("model.pt"));
      EXPECT_EQ(m.meta().classes, (std::vector<std::string>{"ant", "bee", "cow"}));
      EXPECT_EQ(m.meta().image_size, 24);
      EXPECT_EQ(m.meta().normalize, mode);
      EXPECT_EQ(m.meta().backbone_arch, "tiny_cnn");
      auto got = m.predict_proba(u8);
      EXPECT_TRUE(at::allclose(got, expected, 1e-5, 1e-6)) << "hidden " << hidden;
      // The TorchScript method that normalizes inside the file gives the same answer.
      auto inside = m.module().get_method("classify_images")({u8}).toTensor();
      EXPECT_TRUE(at::allclose(inside, expected, 1e-5, 1e-6));
      // No temporary file is left behind.
      int files = 0;
      for (auto& e : fs::directory_iterator(t.path())) files += e.is_regular_file();
      EXPECT_EQ(files, 1);
    }
  }
}

TEST(ModelFile, SavingOverAnExistingModelReplacesItWhole) {
  TempDir t;
  auto clf = make_classifier(0, tlc::NormalizeMode::minus1to1);
  write_text(t.path() / "model.pt", "old");
  clf.save(t.str("model.pt"));
  EXPECT_NO_THROW(tlc::ModelFile::load(t.str("model.pt")));
}

TEST(ModelFile, FailedSaveLeavesThePreviousFileIntact) {
  TempDir t;
  auto clf = make_classifier(0, tlc::NormalizeMode::minus1to1);
  clf.save(t.str("model.pt"));
  const std::string before = read_text(t.path() / "model.pt");
  // A folder where the temporary file would go makes the next write of model.pt fail half-way.
  fs::create_directories(t.path() / (".model.pt.tmp-" + std::to_string(::getpid())));
  auto other = make_classifier(5, tlc::NormalizeMode::caffe);
  EXPECT_ANY_THROW(other.save(t.str("model.pt")));
  EXPECT_EQ(read_text(t.path() / "model.pt"), before);
  EXPECT_EQ(tlc::ModelFile::load(t.str("model.pt")).meta().normalize, tlc::NormalizeMode::minus1to1);
}

TEST(ModelFile, ClearErrorsForWrongFiles) {
  TempDir t;
  try {
    tlc::ModelFile::load(t.str("none.pt"));
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos);
  }
  try {
    tlc::ModelFile::load(source("models/tiny_cnn.pt"));  // a backbone, not a model
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a tlc model"), std::string::npos) << e.what();
  }
  auto clf = make_classifier(0, tlc::NormalizeMode::minus1to1);
  clf.save(t.str("model.pt"));
  std::string bytes = read_text(t.path() / "model.pt");
  write_text(t.path() / "truncated.pt", bytes.substr(0, bytes.size() / 2));
  try {
    tlc::ModelFile::load(t.str("truncated.pt"));
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be loaded"), std::string::npos) << e.what();
  }
}
