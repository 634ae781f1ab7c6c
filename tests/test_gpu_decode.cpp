// The GPU decoder's CPU side, testable without a GPU: which JPEGs may go to nvJPEG (the header walk), the
// --decode choice and its errors. The GPU side is in test_gpu_decode_cuda.cpp (label gpu).
#include <gtest/gtest.h>

#include "../src/data/jpeg_header.h"
#include "jpeg_samples.h"
#include "test_util.h"
#include "tlc/error.h"
#include "tlc/gpu_decode.h"

using namespace tlc_test;

TEST(GpuDecodeChoice, OnlyBaselineYCbCrJpegsWithoutRotationGoToTheGpu) {
  for (const auto& s : gpu_decode_samples()) {
    const std::string why = tlc::gpu_jpeg_refusal(s.bytes.data(), s.bytes.size(), 100'000'000);
    EXPECT_EQ(why.empty(), s.gpu) << s.name << ": " << why;
    if (s.name == "progressive") EXPECT_EQ(why, "progressive JPEG");
    if (s.name == "grayscale") EXPECT_EQ(why, "grayscale JPEG");
    if (s.name == "EXIF-rotated") EXPECT_EQ(why, "EXIF-rotated JPEG");
    if (s.name == "truncated") EXPECT_NE(why.find("end marker"), std::string::npos) << why;
    if (s.name == "PNG" || s.name == "empty") EXPECT_EQ(why, "not a JPEG");
  }
}

TEST(GpuDecodeChoice, HeaderGivesSizeComponentsAndOrientation) {
  const auto samples = gpu_decode_samples();
  const auto& first = samples.at(0);  // 500x375 baseline
  tlc::JpegHeader h = tlc::read_jpeg_header(first.bytes.data(), first.bytes.size());
  EXPECT_TRUE(h.parsed);
  EXPECT_EQ(h.sof, 0xC0);
  EXPECT_EQ(h.width, 500);
  EXPECT_EQ(h.height, 375);
  EXPECT_EQ(h.components, 3);
  EXPECT_EQ(h.precision, 8);
  EXPECT_TRUE(h.ends_with_eoi);
  EXPECT_EQ(h.orientation, 1);
  for (uint16_t o : {2, 6, 8}) {
    auto rotated = with_exif_orientation(first.bytes, o);
    EXPECT_EQ(tlc::jpeg_exif_orientation(rotated.data(), rotated.size()), o);
  }
  // Over the pixel limit: the CPU path refuses it with its message.
  EXPECT_EQ(tlc::gpu_jpeg_refusal(first.bytes.data(), first.bytes.size(), 500 * 375 - 1), "image above the pixel limit");
  // Garbage after SOI is not a readable header, and never read past the end.
  std::vector<uint8_t> junk = {0xFF, 0xD8, 0xFF, 0xC0, 0x00};
  EXPECT_EQ(tlc::gpu_jpeg_refusal(junk.data(), junk.size(), 100), "JPEG headers not readable");
}

// An EXIF block whose IFD offset is near 2^32: the offset check must not wrap (it read ~4 GB past the buffer).
TEST(GpuDecodeChoice, ExifOffsetNearTwoToThe32IsNotFollowed) {
  for (uint32_t ifd : {0xFFFFFFFEu, 0xFFFFFFFFu, 0xFFFFFFF8u, 9u}) {
    std::vector<uint8_t> f = {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 0x2A, 0x00,
                              static_cast<uint8_t>(ifd), static_cast<uint8_t>(ifd >> 8), static_cast<uint8_t>(ifd >> 16),
                              static_cast<uint8_t>(ifd >> 24), 0xFF, 0xD9};
    EXPECT_EQ(tlc::jpeg_exif_orientation(f.data(), f.size()), 1) << ifd;
    EXPECT_EQ(tlc::gpu_jpeg_refusal(f.data(), f.size(), 100), "JPEG headers not readable");
    std::vector<uint8_t> px(16 * 16 * 3);
    tlc::DecodeOptions opt;
    opt.size = 16;
    EXPECT_FALSE(tlc::decode_resized(f.data(), f.size(), px.data(), opt).ok);  // the CPU path reads it too
  }
}

TEST(GpuDecodeChoice, CmykJpegStaysOnTheCpu) {
  TempDir t;
  const std::string py = t.str("cmyk.py"), out = t.str("cmyk.jpg");
  write_text(py, "import sys\nfrom PIL import Image\nImage.new('CMYK', (20, 20), (0, 255, 255, 0)).save(sys.argv[1])\n");
  auto c = run_command(q(TLC_PYTHON) + " " + q(py) + " " + q(out));
  ASSERT_EQ(c.exit_code, 0) << c.out;
  std::vector<uint8_t> b;
  ASSERT_TRUE(tlc::read_file_bytes(out, b, nullptr));
  EXPECT_EQ(tlc::gpu_jpeg_refusal(b.data(), b.size(), 100'000'000), "4-component JPEG (CMYK/YCCK)");
}

TEST(GpuDecodeChoice, DecodeFlagResolvesAndRefusesWhatCannotWork) {
  EXPECT_EQ(tlc::parse_decode_backend("auto"), tlc::DecodeBackend::automatic);
  EXPECT_EQ(tlc::to_string(tlc::parse_decode_backend("gpu")), "gpu");
  EXPECT_THROW(tlc::parse_decode_backend("nvjpeg"), tlc::Error);
  const c10::Device cpu(c10::kCPU);
  EXPECT_FALSE(tlc::use_gpu_decode(tlc::DecodeBackend::automatic, cpu));
  EXPECT_FALSE(tlc::use_gpu_decode(tlc::DecodeBackend::cpu, c10::Device(c10::kCUDA, 0)));
  EXPECT_EQ(tlc::use_gpu_decode(tlc::DecodeBackend::automatic, c10::Device(c10::kCUDA, 0)), tlc::gpu_decode_compiled());
  try {
    tlc::use_gpu_decode(tlc::DecodeBackend::gpu, cpu);
    FAIL() << "--decode gpu on the CPU was accepted";
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--decode cpu"), std::string::npos) << e.what();
  }
}

TEST(GpuDecodeChoice, CliRefusesGpuDecodingOnTheCpuBeforeWritingAnything) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 4, 24);
  const auto out = t.path() / "run";
  auto r = run_command(train_cmd((t.path() / "data").string(), source("models/tiny_cnn.pt"), out.string(),
                                 "--device cpu --decode gpu --epochs 1 --image-size 24"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("--decode gpu"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--decode cpu"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out)) << "a refused run left a folder";
  auto b = run_command(tlc_cmd("bench --device cpu --decode gpu --count 2 --iterations 1 --image-size 16"));
  EXPECT_EQ(b.exit_code, 1) << b.out;
  EXPECT_NE(b.out.find("--decode cpu"), std::string::npos) << b.out;
  auto bad = run_command(tlc_cmd("bench --decode nvjpeg --count 2"));
  EXPECT_NE(bad.exit_code, 0) << bad.out;
}
