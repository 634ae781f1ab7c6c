// GPU decoding on the device (ctest label gpu): nvJPEG + the resize kernel against libjpeg-turbo + OpenCV,
// the CPU path for what nvJPEG does not take, and a training run that must not move with --decode gpu.
#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <nlohmann/json.hpp>

#include <iostream>

#ifdef TLC_WITH_CUDA
#include <c10/cuda/CUDAStream.h>

#include "../cuda/resize.cuh"
#endif
#include "jpeg_samples.h"
#include "test_util.h"
#include "tlc/gpu_decode.h"
#include "tlc/image_io.h"

using namespace tlc_test;

namespace {

bool have_gpu_decoder() { return torch::cuda::is_available() && tlc::gpu_decode_compiled(); }
const char* const kNoGpuDecoder =
    "no CUDA device (or a build without nvJPEG): run scripts/gpu_check.sh on a GPU machine";

}  // namespace

// Tolerance against libjpeg-turbo decoding at full size + OpenCV's resize: IDCTs and chroma upsampling differ
// between decoders, and the resize kernel is within 1 of OpenCV. Measured figures are printed for the record.
TEST(GpuDecode, DecoderMatchesTheCpuPathWithinTolerance) {
  if (!have_gpu_decoder()) GTEST_SKIP() << kNoGpuDecoder;
  const auto samples = gpu_decode_samples();
  std::vector<const std::vector<uint8_t>*> enc;
  for (const auto& s : samples) enc.push_back(&s.bytes);
  tlc::GpuDecoder dec(c10::Device(c10::kCUDA, 0));
  for (int size : {160, 64}) {
    for (auto mode : {tlc::ResizeMode::stretch, tlc::ResizeMode::crop, tlc::ResizeMode::pad}) {
      tlc::DecodeOptions opt;
      opt.size = size;
      opt.resize = mode;
      std::vector<tlc::DecodeStatus> st(samples.size());
      at::Tensor got = dec.decode(enc, opt, st.data(), 0).cpu();
      ASSERT_EQ(got.sizes(), (std::vector<int64_t>{static_cast<int64_t>(samples.size()), size, size, 3}));
      for (size_t i = 0; i < samples.size(); ++i) {
        const auto& s = samples[i];
        const std::string where = s.name + ", " + std::to_string(size) + " px, " + tlc::to_string(mode);
        tlc::DecodeOptions cpu_opt = opt;
        cpu_opt.reduced_jpeg_decode = !s.gpu;  // the GPU decodes at full size; the fallbacks are the CPU path itself
        std::vector<uint8_t> ref(static_cast<size_t>(size) * size * 3, 0);
        tlc::DecodeStatus want = tlc::decode_resized(s.bytes.data(), s.bytes.size(), ref.data(), cpu_opt);
        ASSERT_EQ(st[i].ok, want.ok) << where << ": " << st[i].error << " / " << want.error;
        EXPECT_EQ(st[i].error, want.error) << where;
        if (!want.ok) continue;
        EXPECT_EQ(st[i].width, want.width) << where;
        at::Tensor r = at::from_blob(ref.data(), {size, size, 3}, at::kByte).to(at::kInt);
        at::Tensor d = (got[static_cast<int64_t>(i)].to(at::kInt) - r).abs();
        const int max_diff = d.max().item<int>();
        const double mean_diff = d.to(at::kDouble).mean().item<double>();
        std::cout << "[gpu-decode] " << where << ": max |diff| " << max_diff << ", mean " << mean_diff << "\n";
        if (s.gpu) {
          EXPECT_LE(max_diff, 24) << where;
          EXPECT_LE(mean_diff, 1.5) << where;
        } else {
          EXPECT_EQ(max_diff, 0) << where << ": a CPU-path image must be the CPU path's pixels";
        }
      }
    }
  }
  const auto c = dec.counts();
  std::cout << "[gpu-decode] nvJPEG backend " << dec.backend() << ": " << c.gpu << " on the GPU, " << c.cpu
            << " on the CPU, " << c.failed_batches << " failed batches\n";
  EXPECT_EQ(c.failed_batches, 0);
  // Five baseline samples in six decodes; the hardware backend may leave an odd one to the CPU path.
  EXPECT_GT(c.gpu, 0);
  EXPECT_EQ(c.gpu + c.cpu, static_cast<int64_t>(6 * samples.size()));
}

TEST(GpuDecode, UnreadableFilesAreReportedLikeTheCpuPath) {
  if (!have_gpu_decoder()) GTEST_SKIP() << kNoGpuDecoder;
  TempDir t;
  const auto samples = gpu_decode_samples();
  std::vector<std::string> paths;
  for (size_t i = 0; i < 3; ++i) {
    paths.push_back(t.str("img" + std::to_string(i) + ".jpg"));
    write_text(paths.back(), std::string(samples[i].bytes.begin(), samples[i].bytes.end()));
  }
  paths.push_back(t.str("missing.jpg"));
  tlc::GpuDecoder dec(c10::Device(c10::kCUDA, 0));
  tlc::DecodeOptions opt;
  opt.size = 32;
  std::vector<tlc::DecodeStatus> st(paths.size());
  at::Tensor got = dec.decode_files(paths.data(), paths.size(), opt, st.data(), 2);
  EXPECT_TRUE(st[0].ok && st[1].ok && st[2].ok);
  EXPECT_FALSE(st[3].ok);
  EXPECT_NE(st[3].error.find("cannot open"), std::string::npos) << st[3].error;
  EXPECT_EQ(got[3].sum().item<int64_t>(), 0) << "a failed row must be zeros";
}

// The accuracy of a run does not move with GPU decoding: same data as JPEGs, same seed, --decode gpu vs cpu.
TEST(GpuDecode, TrainingWithGpuDecodingMatchesCpuDecoding) {
  if (!have_gpu_decoder()) GTEST_SKIP() << kNoGpuDecoder;
  TempDir t;
  for (int k = 0; k < 3; ++k) {
    const auto dir = t.path() / "data" / ("class" + std::to_string(k));
    fs::create_directories(dir);
    for (int i = 0; i < 20; ++i)
      cv::imwrite((dir / ("img" + std::to_string(i) + ".jpg")).string(), class_image(k, 96, 7 + 31 * k + i));
  }
  double acc[2];
  for (int g = 0; g < 2; ++g) {
    const std::string run = t.str(g ? "gpu" : "cpu");
    auto r = run_command(train_cmd(t.str("data"), source("models/tiny_bn.pt"), run,
                                   std::string("--device cuda --epochs 4 --image-size 64 --seed 3 --val-split 0.3 --test-split 0 --decode ") +
                                       (g ? "gpu" : "cpu")));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(r.out.find("decoded on the GPU (nvJPEG") != std::string::npos, g == 1) << r.out;
    acc[g] = nlohmann::json::parse(read_text(fs::path(run) / "metrics.json"))["val"]["acc"].get<double>();
  }
  std::cout << "[gpu-decode] val accuracy: --decode cpu " << acc[0] << ", --decode gpu " << acc[1] << "\n";
  EXPECT_NEAR(acc[1], acc[0], 0.12);  // two of the 18 validation images
  // Without a first pass --decode gpu has nothing to do, and the log says so.
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_bn.pt"), t.str("nopass"),
                                 "--device cuda --epochs 1 --image-size 64 --cache-features off --decode gpu"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("note: --decode gpu decodes during the first pass"), std::string::npos) << r.out;
}

#ifdef TLC_WITH_CUDA
// The resize kernel on the device gives the bytes of its CPU emulation (which equals cv::resize bit for bit,
// tests/test_resize_kernel.cpp): every mode, enlarging and shrinking, pitched sources, several jobs a launch.
TEST(GpuDecode, ResizeKernelEqualsItsCpuEmulation) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: run scripts/gpu_check.sh on a GPU machine";
  struct Case { int w, h; };
  const Case cases[] = {{500, 375}, {40, 40}, {1000, 17}, {161, 97}, {320, 320}, {7, 5}, {160, 160}, {33, 300}};
  at::manual_seed(5);
  for (int size : {160, 31}) {
    for (int mode = 0; mode < 3; ++mode) {
      std::vector<at::Tensor> srcs, srcs_dev;
      std::vector<tlc::cuda::ResizeJob> jobs_cpu, jobs_dev;
      for (const Case& c : cases) {
        // Rows padded by 5 pixels: the pitch is not width * 3.
        srcs.push_back(at::randint(0, 256, {c.h, c.w + 5, 3}, at::kByte));
        srcs_dev.push_back(srcs.back().cuda());
        const int64_t pitch = (c.w + 5) * 3;
        jobs_cpu.push_back(tlc::cuda::make_resize_job(srcs.back().data_ptr<uint8_t>(), pitch, c.w, c.h, size, mode));
        jobs_dev.push_back(tlc::cuda::make_resize_job(srcs_dev.back().data_ptr<uint8_t>(), pitch, c.w, c.h, size, mode));
      }
      const int n = static_cast<int>(jobs_cpu.size());
      std::vector<uint8_t> want(static_cast<size_t>(n) * size * size * 3);
      for (int64_t i = 0; i < static_cast<int64_t>(n) * size * size; ++i)
        tlc::cuda::resize_flat(jobs_cpu.data(), size, i, want.data());
      at::Tensor job_bytes = at::from_blob(jobs_dev.data(), {static_cast<int64_t>(n * sizeof(tlc::cuda::ResizeJob))},
                                           at::kByte).cuda();
      at::Tensor out = at::full({n, size, size, 3}, 0xAB, at::TensorOptions().dtype(at::kByte).device(at::kCUDA));
      ASSERT_EQ(tlc::cuda::launch_resize(reinterpret_cast<const tlc::cuda::ResizeJob*>(job_bytes.data_ptr()), n, size,
                                         out.data_ptr<uint8_t>(), c10::cuda::getCurrentCUDAStream().stream()),
                cudaSuccess);
      torch::cuda::synchronize();
      at::Tensor got = out.cpu();
      const int64_t differ = (got.flatten() != at::from_blob(want.data(), {static_cast<int64_t>(want.size())}, at::kByte))
                                 .sum().item<int64_t>();
      EXPECT_EQ(differ, 0) << "size " << size << " mode " << mode;
    }
  }
}
#endif
