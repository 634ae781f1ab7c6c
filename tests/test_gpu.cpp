// GPU checks (ctest label `gpu`): the CUDA normalize and augmentation kernels against their CPU references, and
// training on CUDA against training on the CPU. Each test skips itself, saying why, where no CUDA device is
// visible; scripts/gpu_check.sh runs them on the GPU machine.
#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <iostream>

#include "test_util.h"
#include "tiny_training.h"
#include "tlc/augment.h"
#include "tlc/backbone.h"
#include "tlc/engine.h"
#include "tlc/device.h"
#include "tlc/model_file.h"
#include "tlc/normalize.h"
#include "tlc/prefetch.h"
#include "tlc/trainer.h"

using namespace tlc_test;

namespace {

bool have_cuda() { return torch::cuda::is_available() && tlc::normalize_has_cuda(); }
// Why a GPU test skips: these need a CUDA device and a build with TLC_WITH_CUDA; nothing else skips them.
const char* const kNoGpu = "no CUDA device (or a build without TLC_WITH_CUDA): run scripts/gpu_check.sh on a GPU machine";

}  // namespace

TEST(Gpu, NormalizeKernelMatchesTheCpuReference) {
  if (!have_cuda()) GTEST_SKIP() << kNoGpu;
  struct Shape { int64_t n, h, w; };
  // Awkward shapes: 1x1, odd widths, rows wider than a tile (2,048 px), batch 1 and 257, the real 160x160.
  const Shape shapes[] = {{1, 1, 1}, {1, 7, 13}, {3, 31, 33}, {257, 5, 7}, {2, 160, 160}, {5, 1, 257}, {1, 255, 1},
                          {2, 3, 3001}, {257, 17, 9}};
  at::manual_seed(123);
  int k = 0;
  for (auto s : shapes) {
    auto u8 = at::randint(0, 256, {s.n, s.h, s.w, 3}, at::kByte);
    auto flip = at::randint(0, 2, {s.n}, at::kByte);
    for (auto mode : {tlc::NormalizeMode::minus1to1, tlc::NormalizeMode::imagenet, tlc::NormalizeMode::caffe}) {
      auto spec = tlc::NormalizeSpec::from_mode(mode);
      for (auto layout : {tlc::Layout::nchw, tlc::Layout::nhwc}) {
        for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
          const std::string where = "shape " + std::to_string(s.n) + "x" + std::to_string(s.h) + "x" +
                                    std::to_string(s.w) + " mode " + tlc::to_string(mode) + " dtype " +
                                    c10::toString(dtype) + (layout == tlc::Layout::nchw ? " nchw" : " nhwc");
          auto ref = tlc::normalize(u8, spec, dtype, layout, flip);
          // The output starts `shift` elements into a NaN-poisoned buffer (so at every alignment, 16-byte
          // aligned or not), with NaN guards on both sides: unwritten or stray elements show up as NaN.
          const int64_t count = s.n * 3 * s.h * s.w, shift = k++ % 9;
          auto buf = at::full({count + shift + 16}, NAN, at::TensorOptions().dtype(dtype).device(at::kCUDA));
          auto flat = buf.narrow(0, shift, count);
          at::Tensor out = layout == tlc::Layout::nchw ? flat.view({s.n, 3, s.h, s.w})
                                                       : flat.view({s.n, s.h, s.w, 3}).permute({0, 3, 1, 2});
          tlc::normalize_out(u8.cuda(), spec, flip.cuda(), out);
          torch::cuda::synchronize();  // a kernel fault surfaces here, not later
          auto got = out.cpu();
          ASSERT_FALSE(got.isnan().any().item<bool>()) << where << ": some elements were not written";
          auto b = buf.cpu();
          ASSERT_TRUE(b.narrow(0, 0, shift).isnan().all().item<bool>()) << where << ": written before the output";
          ASSERT_TRUE(b.narrow(0, shift + count, 16).isnan().all().item<bool>()) << where << ": written after it";
          // Both round the same fp32 fused multiply-add result: exact equality in every precision.
          auto diff = (got.to(at::kFloat) - ref.to(at::kFloat)).abs().contiguous();
          auto worst = diff.flatten().argmax().item<int64_t>();
          ASSERT_EQ(diff.flatten()[worst].item<float>(), 0.0f) << where << ": worst mismatch at flat index " << worst;
          // The allocating form gives the same, in the asked memory format.
          auto alloc = tlc::normalize(u8.cuda(), spec, dtype, layout, flip.cuda());
          ASSERT_TRUE(alloc.is_contiguous(layout == tlc::Layout::nchw ? at::MemoryFormat::Contiguous
                                                                      : at::MemoryFormat::ChannelsLast)) << where;
          ASSERT_TRUE(at::equal(alloc.cpu(), got)) << where;
        }
      }
    }
  }
}

TEST(Gpu, AugmentKernelMatchesTheCpuReference) {
  if (!have_cuda() || !tlc::augment_has_cuda()) GTEST_SKIP() << kNoGpu;
  // Every preset's drawn views (the same parameters on both devices), odd shapes, all modes and dtypes. Each
  // product and sum is rounded on its own on both sides (augment.h): fp32 must match bit for bit.
  struct Shape { int64_t n, h, w; };
  const Shape shapes[] = {{1, 1, 1}, {3, 31, 33}, {2, 160, 160}, {65, 7, 5}};
  at::manual_seed(7);
  for (auto s : shapes)
    for (const char* preset : {"keras", "fastai", "timm", "flip=hv,warp=0.45,saturation=0.5,translate=0.3"}) {
      const tlc::AugmentSpec spec = tlc::parse_augment(preset);
      std::vector<tlc::ViewParams> views;
      for (int64_t i = 0; i < s.n; ++i) views.push_back(tlc::draw_view(spec, s.h, s.w, 42, static_cast<uint64_t>(i), 1));
      const at::Tensor prm = tlc::view_tensor(views);
      const auto u8 = at::randint(0, 256, {s.n, s.h, s.w, 3}, at::kByte);
      for (auto mode : {tlc::NormalizeMode::minus1to1, tlc::NormalizeMode::caffe})
        for (auto layout : {tlc::Layout::nchw, tlc::Layout::nhwc})
          for (auto dtype : {at::kFloat, at::kBFloat16}) {
            const auto ns = tlc::NormalizeSpec::from_mode(mode);
            const at::Tensor ref = tlc::augment(u8, prm, ns, dtype, layout);
            const at::Tensor got = tlc::augment(u8.cuda(), prm, ns, dtype, layout);
            ASSERT_TRUE(got.is_cuda());
            const double diff = (got.cpu().to(at::kFloat) - ref.to(at::kFloat)).abs().max().item<double>();
            EXPECT_EQ(diff, 0.0) << preset << " " << s.n << "x" << s.h << "x" << s.w;
          }
    }
}

TEST(Gpu, TrainingOnCudaMatchesTheCpu) {
  if (!have_cuda()) GTEST_SKIP() << kNoGpu;
  auto run = tiny_training_probabilities;
  auto cpu = run("cpu", "fp32");
  // Each precision against the CPU's fp32, within what that precision can promise after 3 epochs.
  for (auto [precision, atol] : {std::pair<std::string, double>{"fp32", 1e-4}, {"tf32", 5e-3}, {"bf16", 1e-2}}) {
    auto gpu = run("cuda", precision);
    EXPECT_TRUE(at::allclose(cpu, gpu, 1e-3, atol))
        << precision << ": max difference " << (cpu - gpu).abs().max().item<double>() << " (atol " << atol << ")";
  }
}

TEST(Gpu, PrefetchedPinnedBatchesArriveIntactOnTheDevice) {
  if (!have_cuda()) GTEST_SKIP() << kNoGpu;
  const c10::Device cuda(c10::kCUDA, 0);
  tlc::Prefetcher p(
      40,
      [](int64_t k, bool pinned) {
        EXPECT_TRUE(pinned) << "batches for a CUDA consumer are made in pinned memory";
        auto t = at::empty({64, 32, 32, 3}, at::TensorOptions().dtype(at::kByte).pinned_memory(pinned));
        t.fill_(static_cast<int64_t>(k % 251));
        EXPECT_EQ(t.is_pinned(), pinned);
        return t;
      },
      cuda, 2);
  for (int64_t k = 0; k < 40; ++k) {
    at::Tensor t = p.next();
    ASSERT_TRUE(t.is_cuda());
    // Work queued behind the asynchronous copy on the same stream sees the copied bytes.
    ASSERT_EQ(t.to(at::kLong).sum().item<int64_t>(), (k % 251) * t.numel()) << "batch " << k;
  }
}

// A saved model predicts in float32 on CUDA too (no TF32, whatever an earlier run in the process allowed):
// the same probabilities as on the CPU within fp32 noise, as Python's torch.jit.load(model.pt) gives.
TEST(Gpu, ModelFileOnCudaPredictsInFloat32LikeTheCpu) {
  if (!have_cuda()) GTEST_SKIP() << kNoGpu;
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 32);
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"),
                                 "--image-size 32 --epochs 1 --device cpu"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  tlc::allow_tf32(true);  // as a tf32 training run in the same process would have left it
  auto cpu = tlc::ModelFile::load(t.str("run/model.pt"));
  auto gpu = tlc::ModelFile::load(t.str("run/model.pt"));
  gpu.to(c10::Device(c10::kCUDA));
  EXPECT_FALSE(tlc::tf32_allowed());
  auto u8 = at::randint(0, 256, {4, 32, 32, 3}, at::kByte);
  auto a = cpu.predict_proba(u8), b = gpu.predict_proba(u8);
  EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-5)) << (a - b).abs().max().item<double>();
}

// bf16 is the default on CUDA: after fine-tuning, the frozen bf16 path must run the tuned weights.
TEST(Gpu, FineTunedRunScoresItsSavedModelInBf16) {
  if (!have_cuda()) GTEST_SKIP() << kNoGpu;
  auto c = bf16_finetune_then_evaluate("--device cuda", "--device cuda");
  ASSERT_FALSE(c.metrics.is_null() || c.evaluation.is_null()) << c.log;
  EXPECT_NEAR(c.metrics["test"]["loss"].get<double>(), c.evaluation["loss"].get<double>(), 0.02) << c.log;
}

// Out of GPU memory on purpose (VGG16 at 4,096 px, batch 128: one activation alone is ~275 GB): a clear
// error with what was asked for, what was free and the way out; exit 1, no crash, no model left half-written.
TEST(Gpu, OutOfMemoryIsAClearErrorWithTheWayOut) {
  if (!have_cuda()) GTEST_SKIP() << kNoGpu;
  TempDir t;
  make_dataset(t.path() / "data", 2, 64, 16);
  auto r = run_command(train_cmd(t.str("data"), test_model("vgg16_random.pt"), t.str("run"),
                                 "--image-size 4096 --batch-size 128 --epochs 1 --val-split 0 --test-split 0 --device cuda"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("out of GPU memory"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("it asked for"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("free of"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--batch-size"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(t.path() / "run" / "model.pt"));
  std::cout << "[ message  ] " << r.out.substr(r.out.find("tlc: error")) << "\n";
}

// The CUDA-graph engine (issue 20's compiled path on CUDA): after the warm-up its replays give what the eager
// engine gives, for captured shapes and for a batch too large to capture; weights_changed re-captures with the
// new weights; a Backbone on CUDA runs it with TLC_CUDA_GRAPHS=1 only.
TEST(Gpu, CudaGraphEngineReplaysWhatTheEagerEngineComputes) {
  if (!have_cuda()) GTEST_SKIP() << kNoGpu;
  const c10::Device cuda(c10::kCUDA);
  auto b = tlc::Backbone::load(source("models/tiny_bn.pt"));
  b.to(cuda);
  std::shared_ptr<tlc::FrozenEngine> eager = tlc::make_torchscript_engine(b.module(), at::kBFloat16);
  auto graphs = tlc::with_cuda_graphs(tlc::make_torchscript_engine(b.module(), at::kBFloat16));
  at::manual_seed(3);
  auto batch = [&](int64_t n) {
    return at::randn({n, 3, 32, 32}, at::TensorOptions().device(cuda)).to(at::kBFloat16)
        .contiguous(at::MemoryFormat::ChannelsLast);
  };
  auto same = [&](const at::Tensor& x, const char* what, int i) {
    auto want = eager->pooled(x), got = graphs->pooled(x);
    EXPECT_TRUE(at::allclose(want, got, 1e-3, 1e-3)) << what << " call " << i << ": "
                                                     << (want - got).abs().max().item<double>();
  };
  for (int i = 0; i < 6; ++i) same(batch(8), "batch 8", i);  // 2 eager, then captured and replayed 4 times
  for (int i = 0; i < 4; ++i) same(batch(1), "batch 1", i);  // a second graph: 2 replays
  for (int i = 0; i < 4; ++i) same(batch(64), "batch 64 (too large to capture)", i);
  EXPECT_EQ(graphs->status(), "CUDA graphs: 2 captured, 6 replays") << graphs->status();
  {
    torch::NoGradGuard ng;
    for (auto p : b.module().parameters()) p.mul_(1.5);
  }
  eager->weights_changed();
  graphs->weights_changed();
  for (int i = 0; i < 5; ++i) same(batch(8), "after weights_changed", i);
  EXPECT_EQ(graphs->status(), "CUDA graphs: 3 captured, 9 replays") << graphs->status();

  setenv("TLC_CUDA_GRAPHS", "1", 1);
  b.request_engine(tlc::engine_request("auto", "auto", cuda), 32);
  EXPECT_NE(b.prepare_engine().find("+ CUDA graphs"), std::string::npos) << b.engine_line();
  unsetenv("TLC_CUDA_GRAPHS");
  b.request_engine(tlc::engine_request("auto", "auto", cuda), 32);
  EXPECT_EQ(b.prepare_engine().find("CUDA graphs"), std::string::npos) << b.engine_line();
}

namespace {
// An engine whose pass synchronizes with the host (.item()), which a CUDA graph capture does not allow.
struct SyncingEngine : tlc::FrozenEngine {
  at::Tensor forward(const at::Tensor& x) override {
    const double s = x.sum().item<double>();
    return x.to(at::kFloat) + (std::isfinite(s) ? 0.0 : 1.0);
  }
  void weights_changed() override {}
  void to(const c10::Device&) override {}
  std::string name() const override { return "syncing"; }
};
}  // namespace

// A capture that fails falls back to eager runs with the same results and leaves the CUDA allocator working.
// (It turns graphs off for the rest of the process: ctest runs each test in a process of its own, and in one
// gtest process this test comes after the one above.)
TEST(Gpu, CudaGraphCaptureThatFailsFallsBackAndLeavesTheAllocatorWorking) {
  if (!have_cuda()) GTEST_SKIP() << kNoGpu;
  const c10::Device cuda(c10::kCUDA);
  auto g = tlc::with_cuda_graphs(std::make_shared<SyncingEngine>());
  auto x = at::randn({4, 3, 8, 8}, at::TensorOptions().device(cuda));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(at::allclose(g->pooled(x), x.mean({2, 3}), 1e-5, 1e-6)) << "call " << i;
  EXPECT_NE(g->status().find("0 captured, 0 replays; off: "), std::string::npos) << g->status();
  for (int i = 0; i < 3; ++i) {  // allocations, frees and kernels on the default stream still work
    auto y = at::randn({512, 512}, at::TensorOptions().device(cuda));
    EXPECT_TRUE(std::isfinite(y.matmul(y).sum().item<double>()));
  }
  torch::cuda::synchronize();
  std::cout << "[cuda-graphs] a capture that failed: " << g->status() << "\n";
}
