// --precision int8 (tlc/engine.h, tlc/calibration.h): never automatic, OpenVINO on the CPU only; the engine is
// quantized by NNCF on calibration images (the run's training images, or --calibration DIR), cached with them,
// close to fp32; `tlc evaluate` prints what int8 costs against fp32; without images it is a clear error.
#include <ATen/ATen.h>

#include <fstream>
#include <sstream>

#include "engine_test_util.h"
#include "test_util.h"
#include "tlc/backbone.h"
#include "tlc/calibration.h"
#include "tlc/error.h"

using namespace tlc_test;

TEST(EngineChoice, Int8IsAskedForAndRunsOnOpenVinoOnly) {
  // Never automatic, on any CPU: int8 changes results by more than rounding.
  EXPECT_EQ(tlc::choose_engine(request(sapphire_rapids())).precision, "bf16");
  EXPECT_EQ(tlc::choose_engine(request(avx2_only())).precision, "fp32");

  auto c = tlc::choose_engine(request(sapphire_rapids(), "auto", "int8"));
  EXPECT_EQ(c.engine, "openvino");
  EXPECT_EQ(c.precision, "int8");
  EXPECT_TRUE(contains(c.reason, "AMX-INT8")) << c.reason;
  tlc::CpuFeatures vnni = avx2_only();
  vnni.avx512 = vnni.avx512_vnni = true;
  EXPECT_TRUE(contains(tlc::choose_engine(request(vnni, "openvino", "int8")).reason, "AVX512-VNNI"));
  // Allowed without int8 hardware (OpenVINO has AVX2 int8 kernels), and the reason says it gains less.
  c = tlc::choose_engine(request(avx2_only(), "auto", "int8"));
  EXPECT_EQ(c.engine, "openvino");
  EXPECT_TRUE(contains(c.reason, "gains less")) << c.reason;

  auto error_of = [](const tlc::EngineRequest& r) {
    try {
      tlc::choose_engine(r);
    } catch (const tlc::Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_TRUE(contains(error_of(request(sapphire_rapids(), "auto", "int8", true, /*cuda=*/true)), "--device cpu"));
  EXPECT_TRUE(contains(error_of(request(sapphire_rapids(), "torchscript", "int8")), "drop --engine torchscript"));
  EXPECT_TRUE(contains(error_of(request(sapphire_rapids(), "auto", "int8", /*openvino=*/false)), "no OpenVINO"));
  EXPECT_TRUE(contains(error_of(request(avx2_only(), "auto", "int4")), "int8"));
}

TEST(Calibration, PicksImagesSpreadOverTheWholeList) {
  EXPECT_EQ(tlc::calibration_indices(5, 10), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(tlc::calibration_indices(10, 4), (std::vector<int64_t>{0, 2, 5, 7}));
  EXPECT_TRUE(tlc::calibration_indices(0, 4).empty());
  // A class-sorted listing of 3 x 1000 images: every class gets its share of the default 128.
  const auto idx = tlc::calibration_indices(3000);
  ASSERT_EQ(static_cast<int64_t>(idx.size()), tlc::kCalibrationImages);
  int per_class[3] = {0, 0, 0};
  for (int64_t i : idx) ++per_class[i / 1000];
  for (int n : per_class) EXPECT_NEAR(n, 128 / 3, 1);
}

#if TLC_TEST_OPENVINO

TEST(Int8, QuantizedOnItsCalibrationImagesCachedAndCloseToFp32) {
  TempDir t;
  EngineEnv env(t.str("cache"));
  auto b = tlc::Backbone::load(source("models/tiny_bn.pt"));
  b.request_engine(request(avx2_only(), "openvino", "int8"), 24);
  EXPECT_TRUE(b.needs_calibration());
  // Without calibration images: TorchScript fp32 runs, and the line says why.
  std::string line = b.prepare_engine();
  EXPECT_TRUE(contains(line, "engine: torchscript fp32")) << line;
  EXPECT_TRUE(contains(line, "calibration")) << line;

  at::manual_seed(11);
  const at::Tensor calib = at::randn({24, 3, 24, 24});
  b.set_calibration(calib, "24 test images");
  EXPECT_FALSE(b.needs_calibration());
  line = b.prepare_engine();
  EXPECT_TRUE(contains(line, "engine: openvino")) << line;
  EXPECT_TRUE(contains(line, "int8")) << line;
  EXPECT_TRUE(contains(line, "calibrated on 24 test images")) << line;
  ASSERT_EQ(cache_entries(t.str("cache"), "openvino-int8-"), 1);
  // The cached IR is quantized (NNCF inserts FakeQuantize operations), not a float copy.
  for (const auto& e : fs::directory_iterator(t.path() / "cache")) {
    std::ifstream xml(e.path() / "backbone.xml");
    std::stringstream ss;
    ss << xml.rdbuf();
    EXPECT_TRUE(contains(ss.str(), "FakeQuantize")) << e.path();
  }
  // Close to the float32 reference on inputs like the calibration ones: per-image cosine of the features.
  const at::Tensor x = at::randn({8, 3, 24, 24});
  const at::Tensor got = b.pooled_features(x), want = reference_features(b, x);
  const at::Tensor cos = at::cosine_similarity(got, want, 1);
  EXPECT_GT(cos.min().item<double>(), 0.98) << cos;

  // The same images again: the cached engine, no conversion (no Python needed).
  env.python("/nonexistent/python");
  auto b2 = tlc::Backbone::load(source("models/tiny_bn.pt"));
  b2.request_engine(request(avx2_only(), "openvino", "int8"), 24);
  b2.set_calibration(calib, "24 test images");
  EXPECT_TRUE(contains(b2.prepare_engine(), "engine: openvino")) << b2.prepare_engine();
  // Other images are another engine: they would need a conversion, which fails here and says so.
  auto b3 = tlc::Backbone::load(source("models/tiny_bn.pt"));
  b3.request_engine(request(avx2_only(), "openvino", "int8"), 24);
  b3.set_calibration(calib * 2, "other images");
  line = b3.prepare_engine();
  EXPECT_TRUE(contains(line, "engine: torchscript fp32")) << line;
  EXPECT_TRUE(contains(line, "nncf")) << line;
}

TEST(Int8, TrainPredictAndEvaluateCalibrateOnTheTrainingImages) {
  TempDir t;
  EngineEnv env(t.str("cache"));
  make_dataset(t.path() / "data", 2, 8, 24);
  auto tr = run_command(tlc_cmd("train " + t.str("data") + " --backbone " + source("models/tiny_bn.pt") + " --out " +
                                t.str("run") + " --epochs 2 --image-size 24 --precision int8"));
  ASSERT_EQ(tr.exit_code, 0) << tr.out;
  EXPECT_TRUE(contains(tr.out, "engine: openvino")) << tr.out;
  EXPECT_TRUE(contains(tr.out, "int8")) << tr.out;
  // 16 images, 10% validation and 10% test split off: the training split's images, not all 16.
  EXPECT_TRUE(contains(tr.out, "calibrated on 12 training images")) << tr.out;

  // evaluate: the run's own training images again (the cached engine), and what int8 costs against fp32.
  auto ev = run_command(tlc_cmd("evaluate " + t.str("run") + " " + t.str("data") + " --precision int8"));
  ASSERT_EQ(ev.exit_code, 0) << ev.out;
  // The training rows of the run's splits.csv: the 12 of training, not all 16 images of the folder.
  EXPECT_TRUE(contains(ev.out, "calibrated on 12 training images of the run")) << ev.out;
  EXPECT_TRUE(contains(ev.out, "int8 against fp32 on the same images: accuracy")) << ev.out;
  EXPECT_TRUE(contains(ev.out, "% of the images")) << ev.out;
  auto js = run_command(tlc_cmd("evaluate " + t.str("run") + " " + t.str("data") + " --precision int8 --json"));
  ASSERT_EQ(js.exit_code, 0) << js.out;
  EXPECT_TRUE(contains(js.out, "\"fp32_accuracy\"")) << js.out;

  // predict on the run folder: calibrated like training; a bare model file needs --calibration.
  auto pr = run_command(tlc_cmd("predict " + t.str("run") + " " + t.str("data") + " --precision int8 --csv"));
  ASSERT_EQ(pr.exit_code, 0) << pr.out;
  EXPECT_TRUE(contains(pr.out, "engine: openvino")) << pr.out;
  EXPECT_TRUE(contains(pr.out, "calibrated on 12 training images of the run")) << pr.out;
  // train, evaluate and predict of one run calibrate on the same images: one int8 engine, quantized once.
  EXPECT_EQ(cache_entries(t.str("cache"), "openvino-int8-"), 1);
  fs::create_directories(t.path() / "elsewhere");
  fs::copy_file(t.path() / "run" / "model.pt", t.path() / "elsewhere" / "model.pt");
  auto bare = run_command(tlc_cmd("predict " + t.str("elsewhere/model.pt") + " " + t.str("data") + " --precision int8"));
  EXPECT_NE(bare.exit_code, 0) << bare.out;
  EXPECT_TRUE(contains(bare.out, "--calibration DIR")) << bare.out;
  auto given = run_command(tlc_cmd("predict " + t.str("elsewhere/model.pt") + " " + t.str("data") +
                                   " --precision int8 --calibration " + t.str("data")));
  EXPECT_EQ(given.exit_code, 0) << given.out;
  // An int8 engine that cannot be made (no Python to quantize with, images not seen before): predict says so and
  // runs fp32; evaluate, whose point is the int8 cost, refuses instead of reporting a cost of zero.
  fs::create_directories(t.path() / "other");
  fs::copy_file(t.path() / "data" / "circle_red" / "img0.png", t.path() / "other" / "a.png");
  const std::string no_python = "TLC_PYTHON=/nonexistent/python ";
  auto fb = run_command(no_python + tlc_cmd("predict " + t.str("run") + " " + t.str("data") +
                                            " --precision int8 --calibration " + t.str("other")));
  EXPECT_EQ(fb.exit_code, 0) << fb.out;
  EXPECT_TRUE(contains(fb.out, "could not be made")) << fb.out;
  auto fe = run_command(no_python + tlc_cmd("evaluate " + t.str("run") + " " + t.str("data") +
                                            " --precision int8 --calibration " + t.str("other")));
  EXPECT_NE(fe.exit_code, 0) << fe.out;
  EXPECT_TRUE(contains(fe.out, "no int8 cost to measure")) << fe.out;
  // --calibration without int8 is a mistake, said as one.
  auto wrong = run_command(tlc_cmd("predict " + t.str("run") + " " + t.str("data") + " --precision fp32 --calibration " +
                                   t.str("data")));
  EXPECT_NE(wrong.exit_code, 0) << wrong.out;
  EXPECT_TRUE(contains(wrong.out, "is for --precision int8")) << wrong.out;
}

#endif  // TLC_TEST_OPENVINO
