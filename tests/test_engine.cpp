// Engines of the frozen passes (tlc/engine.h): the choice per CPU feature (injected), parity of the compiled
// engine with the TorchScript reference, its cache, the fallback when it cannot be made, fine-tuned weights.
#include <ATen/ATen.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "engine_test_util.h"
#include "test_util.h"
#include "tlc/backbone.h"
#include "tlc/error.h"
#include "tlc/model_file.h"
#include "tlc/subprocess.h"

using namespace tlc_test;

namespace {

// What fine-tuning does to the last layer with parameters, in place; frozen again afterwards.
void fine_tune_last_layer(tlc::Backbone& b) {
  auto params = b.unfreeze_last(1);
  ASSERT_FALSE(params.empty());
  {
    torch::NoGradGuard ng;
    for (auto& p : params) p.add_(0.5);
  }
  b.unfreeze_last(0);
}


}  // namespace

TEST(EngineChoice, AutoIsFp32OnACpuWithoutBf16Hardware) {
  auto c = tlc::choose_engine(request(avx2_only()));
  EXPECT_EQ(c.precision, "fp32");
  EXPECT_EQ(c.engine, "openvino");
  EXPECT_TRUE(contains(c.reason, "AVX2")) << c.reason;
  EXPECT_TRUE(contains(c.reason, "neither AMX-BF16 nor AVX512-BF16")) << c.reason;
}

TEST(EngineChoice, AutoIsBf16WithAmxOrAvx512Bf16) {
  auto c = tlc::choose_engine(request(sapphire_rapids()));
  EXPECT_EQ(c.precision, "bf16");
  EXPECT_EQ(c.engine, "openvino");
  EXPECT_TRUE(contains(c.reason, "AMX-BF16")) << c.reason;
  tlc::CpuFeatures cooper = avx2_only();
  cooper.avx512 = cooper.avx512_bf16 = true;  // AVX512-BF16 without AMX (Cooper Lake, Zen 4)
  c = tlc::choose_engine(request(cooper));
  EXPECT_EQ(c.precision, "bf16");
  EXPECT_TRUE(contains(c.reason, "AVX512-BF16")) << c.reason;
  // AVX512 alone (Skylake-SP) has no bf16 arithmetic: fp32.
  tlc::CpuFeatures skylake = avx2_only();
  skylake.avx512 = skylake.avx512_vnni = true;
  EXPECT_EQ(tlc::choose_engine(request(skylake)).precision, "fp32");
}

TEST(EngineChoice, ExplicitRequestsAndTheBuild) {
  // An explicit bf16 without bf16 hardware is honoured, by TorchScript (OpenVINO's CPU plugin has no bf16 there),
  // and the reason warns.
  auto c = tlc::choose_engine(request(avx2_only(), "auto", "bf16"));
  EXPECT_EQ(c.precision, "bf16");
  EXPECT_EQ(c.engine, "torchscript");
  EXPECT_TRUE(contains(c.reason, "emulated")) << c.reason;
  EXPECT_EQ(tlc::choose_engine(request(avx2_only(), "auto", "tf32")).precision, "fp32");
  EXPECT_EQ(tlc::choose_engine(request(sapphire_rapids(), "auto", "fp32")).precision, "fp32");
  c = tlc::choose_engine(request(sapphire_rapids(), "torchscript"));
  EXPECT_EQ(c.engine, "torchscript");
  EXPECT_EQ(c.precision, "bf16");
  c = tlc::choose_engine(request(sapphire_rapids(), "auto", "auto", /*openvino=*/false));
  EXPECT_EQ(c.engine, "torchscript");
  EXPECT_TRUE(contains(c.reason, "no OpenVINO")) << c.reason;
  EXPECT_THROW(tlc::choose_engine(request(avx2_only(), "openvino", "auto", false)), tlc::Error);
  EXPECT_THROW(tlc::choose_engine(request(avx2_only(), "tensorrt")), tlc::Error);
  EXPECT_THROW(tlc::choose_engine(request(avx2_only(), "auto", "int4")), tlc::Error);
}

TEST(EngineChoice, CudaKeepsTorchScriptInBf16) {
  auto c = tlc::choose_engine(request(avx2_only(), "auto", "auto", true, /*cuda=*/true));
  EXPECT_EQ(c.engine, "torchscript");
  EXPECT_EQ(c.precision, "bf16");
  EXPECT_EQ(tlc::choose_engine(request(avx2_only(), "auto", "tf32", true, true)).precision, "tf32");
  try {
    tlc::choose_engine(request(avx2_only(), "openvino", "auto", true, true));
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_TRUE(contains(e.what(), "--device cpu")) << e.what();
  }
}

#if defined(__linux__) && defined(__x86_64__)  // /proc/cpuinfo's flags line is Linux's, its names x86's
TEST(EngineChoice, DetectedFeaturesAgreeWithProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  ASSERT_TRUE(in) << "no /proc/cpuinfo";
  std::string line, flags;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      flags = line + " ";
      break;
    }
  ASSERT_FALSE(flags.empty()) << "no flags line in /proc/cpuinfo";
  const tlc::CpuFeatures f = tlc::detect_cpu_features();
  EXPECT_EQ(f.avx2, contains(flags, " avx2 ")) << f.describe();
  EXPECT_EQ(f.avx512, contains(flags, " avx512f ")) << f.describe();
  EXPECT_EQ(f.avx512_bf16, contains(flags, " avx512_bf16 ")) << f.describe();
  // AMX counts only when the kernel also grants the tile state, so it may be off where the flag is on.
  if (f.amx_bf16) EXPECT_TRUE(contains(flags, " amx_bf16 "));
}
#endif

// The OpenVINO engine's tests are compiled into builds that link OpenVINO (TLC_WITH_OPENVINO, on whenever
// scripts/setup.sh installed the wheel), instead of skipping themselves elsewhere.
#if TLC_TEST_OPENVINO

TEST(Engine, OpenVinoMatchesTorchScriptAndIsCached) {
  TempDir t;
  EngineEnv env(t.str("cache"));
  auto b = tlc::Backbone::load(source("models/tiny_bn.pt"));
  b.request_engine(request(avx2_only(), "openvino", "fp32"), 24);
  const std::string line = b.prepare_engine();
  ASSERT_TRUE(contains(line, "engine: openvino")) << line;
  EXPECT_EQ(cache_entries(t.str("cache")), 1);
  at::manual_seed(5);
  for (int64_t n : {1, 3, 7}) {  // any batch size: the IR's batch is dynamic
    auto x = at::randn({n, 3, 24, 24});
    auto got = b.pooled_features(x), want = reference_features(b, x);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-4) << "batch " << n;
    // The maps themselves (copied out of the request), averaged by ATen: the engine's own average, up to rounding.
    at::Tensor maps = b.forward(x);
    EXPECT_LT((maps.mean({2, 3}) - got).abs().max().item<double>(), 1e-5) << "batch " << n;
    // The maps are the caller's: the next inference (which reuses the request's buffer) leaves them alone.
    const at::Tensor kept = maps.clone();
    b.forward(at::randn({n, 3, 24, 24}));
    EXPECT_TRUE(at::equal(maps, kept)) << "batch " << n;
  }
  // Another size than the engine's (a probe): the module answers, with the same values.
  auto x = at::randn({2, 3, 20, 20});
  EXPECT_TRUE(at::equal(b.pooled_features(x), reference_features(b, x)));
  // A second backbone from the same file reads the cached IR: no Python is needed any more.
  env.python("/nonexistent/python");
  auto b2 = tlc::Backbone::load(source("models/tiny_bn.pt"));
  b2.request_engine(request(avx2_only(), "openvino", "fp32"), 24);
  EXPECT_TRUE(contains(b2.prepare_engine(), "engine: openvino")) << b2.prepare_engine();
  EXPECT_EQ(cache_entries(t.str("cache")), 1);
}

TEST(Engine, FallsBackToTorchScriptWithTheReason) {
  TempDir t;
  EngineEnv env(t.str("cache"));
  env.python("/nonexistent/python");
  auto b = tlc::Backbone::load(source("models/tiny_cnn.pt"));
  b.request_engine(request(avx2_only(), "auto", "fp32"), 16);
  const std::string line = b.prepare_engine();
  EXPECT_TRUE(contains(line, "engine: torchscript fp32")) << line;
  EXPECT_TRUE(contains(line, "could not be made")) << line;
  EXPECT_TRUE(contains(line, "/nonexistent/python")) << line;
  EXPECT_TRUE(contains(line, "TLC_PYTHON")) << line;
  auto x = at::randn({2, 3, 16, 16});
  EXPECT_TRUE(at::equal(b.pooled_features(x), reference_features(b, x)));
  EXPECT_EQ(cache_entries(t.str("cache")), 0);
}

TEST(Engine, AConverterKilledByASignalIsNamed) {
  TempDir t;
  EngineEnv env(t.str("cache"));
  write_text(t.path() / "crash.sh", "#!/bin/sh\nkill -SEGV $$\n");
  fs::permissions(t.path() / "crash.sh", fs::perms::owner_all);
  env.python(t.str("crash.sh"));
  auto b = tlc::Backbone::load(source("models/tiny_cnn.pt"));
  b.request_engine(request(avx2_only(), "openvino", "fp32"), 16);
  const std::string line = b.prepare_engine();
  EXPECT_TRUE(contains(line, "signal 11")) << line;
  EXPECT_TRUE(contains(line, "crash.sh")) << line;
}

TEST(Engine, FineTunedWeightsGetAnEngineOfTheirOwn) {
  TempDir t;
  EngineEnv env(t.str("cache"));
  auto b = tlc::Backbone::load(source("models/tiny_cnn.pt"));
  b.request_engine(request(avx2_only(), "openvino", "fp32"), 16);
  at::manual_seed(3);
  auto x = at::randn({2, 3, 16, 16});
  auto before = b.pooled_features(x);
  fine_tune_last_layer(b);
  auto after = b.pooled_features(x);
  EXPECT_GT((after - before).abs().max().item<double>(), 0.05) << "the engine still runs the old weights";
  EXPECT_LT((after - reference_features(b, x)).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(contains(b.engine_name(), "openvino")) << b.engine_name();
  EXPECT_EQ(cache_entries(t.str("cache")), 2);
}

#endif  // TLC_TEST_OPENVINO

TEST(Engine, TorchScriptBf16FollowsFineTunedWeights) {
  // Review finding (kept from the reduced-precision copy's days): the bf16 copy must take changed weights.
  auto b = tlc::Backbone::load(source("models/tiny_cnn.pt"));
  b.request_engine(request(avx2_only(), "torchscript", "bf16"), 16);
  EXPECT_EQ(b.frozen_dtype(), at::kBFloat16);
  EXPECT_TRUE(b.frozen_channels_last());
  at::manual_seed(3);
  auto x = at::randn({2, 3, 16, 16});
  auto before = b.pooled_features(x);
  fine_tune_last_layer(b);
  auto after = b.pooled_features(x);
  auto want = reference_features(b, x);
  EXPECT_GT((after - before).abs().max().item<double>(), 0.05) << "the bf16 copy still runs the old weights";
  EXPECT_TRUE(at::allclose(after, want, 2e-2, 2e-2)) << (after - want).abs().max().item<double>();
}

TEST(Subprocess, ReportsHowAChildEnded) {
  auto ok = tlc::run_child({"sh", "-c", "echo hello; exit 3"}, {"TLC_X=1"}, true);
  EXPECT_TRUE(ok.started);
  EXPECT_EQ(ok.exit_code, 3);
  EXPECT_EQ(ok.output, "hello\n");
  EXPECT_EQ(tlc::describe_child_end(ok), "exited with code 3");
  auto env = tlc::run_child({"sh", "-c", "printf %s \"$TLC_X\""}, {"TLC_X=2"}, true);
  EXPECT_EQ(env.output, "2");
  auto killed = tlc::run_child({"sh", "-c", "kill -SEGV $$"}, {}, true);
  EXPECT_EQ(killed.signal, 11);
  EXPECT_TRUE(contains(tlc::describe_child_end(killed), "signal 11")) << tlc::describe_child_end(killed);
  auto missing = tlc::run_child({"/nonexistent/tool"}, {}, true);
  EXPECT_FALSE(missing.started);
  EXPECT_TRUE(contains(tlc::describe_child_end(missing), "could not be started"));
}

// Review finding: an engine built while parameters trained (a fine-tune phase asking for it) was not told
// when that phase ended with changed weights, and later frozen passes ran the weights from before.
TEST(Engine, AnEngineBuiltWhileTrainingTakesTheWeightsItEndedWith) {
  auto b = tlc::Backbone::load(source("models/tiny_cnn.pt"));
  b.request_engine(request(avx2_only(), "torchscript", "bf16"), 16);
  auto params = b.unfreeze_last(1);
  b.prepare_engine();  // built now, with the weights before the steps below
  {
    torch::NoGradGuard ng;
    for (auto& p : params) p.add_(0.5);
  }
  b.unfreeze_last(0);
  at::manual_seed(4);
  auto x = at::randn({2, 3, 16, 16});
  auto got = b.pooled_features(x), want = reference_features(b, x);
  EXPECT_TRUE(at::allclose(got, want, 2e-2, 2e-2)) << (got - want).abs().max().item<double>();
}

#if TLC_TEST_OPENVINO
TEST(Engine, PredictAndEvaluateOnOpenVinoAgreeWithTorchScript) {
  TempDir t;
  EngineEnv env(t.str("cache"));
  make_dataset(t.path() / "data", 2, 6, 24);
  const std::string bin = TLC_BINARY;
  auto tr = run_command(bin + " train " + t.str("data") + " --backbone " + source("models/tiny_bn.pt") + " --out " +
                        t.str("run") + " --epochs 2 --image-size 24 --engine openvino --precision fp32 2>&1");
  ASSERT_EQ(tr.exit_code, 0) << tr.out;
  EXPECT_TRUE(contains(tr.out, "engine: openvino")) << tr.out;
  EXPECT_TRUE(contains(tr.out, "--precision fp32")) << tr.out;
  auto probs = [&](const std::string& flags) {
    auto r = run_command(bin + " predict " + t.str("run") + " " + t.str("data") + " --csv " + flags);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    std::vector<double> v;
    std::istringstream in(r.out);
    std::string row;
    std::getline(in, row);  // header
    while (std::getline(in, row)) {
      std::istringstream f(row);
      std::string cell;
      for (int c = 0; std::getline(f, cell, ','); ++c)
        if (c >= 3 && !cell.empty()) v.push_back(std::stod(cell));
    }
    return v;
  };
  const auto ts = probs("--engine torchscript"), ov = probs("--engine openvino --precision fp32");
  ASSERT_EQ(ts.size(), 24u);
  ASSERT_EQ(ov.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_NEAR(ov[i], ts[i], 1e-4) << i;
  auto ev = run_command(bin + " evaluate " + t.str("run") + " --engine openvino --precision fp32");
  ASSERT_EQ(ev.exit_code, 0) << ev.out;
  EXPECT_TRUE(contains(ev.out, "engine: openvino")) << ev.out;
}

TEST(Engine, FrozenPrefixRunsOnOpenVinoWhileFineTuning) {
  TempDir t;
  EngineEnv env(t.str("cache"));
  auto b = tlc::Backbone::load(source("models/tiny_bn.pt"));
  ASSERT_GT(b.sequential_length(), 2);
  b.request_engine(request(avx2_only(), "openvino", "fp32"), 24);
  b.unfreeze_last(1);
  const int64_t k = b.first_trainable_child();
  ASSERT_GT(k, 0);
  at::manual_seed(9);
  auto x = at::randn({3, 3, 24, 24});
  at::Tensor got = b.forward_prefix(x, k), want;
  {
    torch::NoGradGuard ng;
    want = b.forward_range(x, 0, k);
  }
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-4);
  EXPECT_EQ(cache_entries(t.str("cache")), 1);  // the prefix's IR; the whole backbone's was never needed
  // A prefix that holds a trainable block cannot run frozen: the module runs it (with its graph).
  auto g = b.forward_prefix(x, b.sequential_length());
  EXPECT_TRUE(g.requires_grad());
  EXPECT_EQ(cache_entries(t.str("cache")), 1);
  // An empty prefix (the first block trains) is the input itself: nothing to convert.
  EXPECT_TRUE(at::equal(b.forward_prefix(x, 0), x));
  EXPECT_EQ(cache_entries(t.str("cache")), 1);
}
#endif  // TLC_TEST_OPENVINO
