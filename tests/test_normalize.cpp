// The normalize op: each mode against hand-computed values, layouts, flip, reduced precision.
#include <ATen/ATen.h>

#include <cmath>

#include "test_util.h"
#include "tlc/error.h"
#include "tlc/normalize.h"

namespace {

at::Tensor pixels_2x2() {
  // One image, 2x2, RGB: (0,128,255) (10,20,30) / (255,255,255) (1,2,3)
  std::vector<uint8_t> v = {0, 128, 255, 10, 20, 30, 255, 255, 255, 1, 2, 3};
  return at::tensor(v, at::kByte).reshape({1, 2, 2, 3});
}

}  // namespace

TEST(Normalize, Minus1To1HandComputed) {
  auto out = tlc::normalize(pixels_2x2(), tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::minus1to1), at::kFloat,
                            tlc::Layout::nchw);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 3, 2, 2}));
  auto a = out.accessor<float, 4>();
  EXPECT_FLOAT_EQ(a[0][0][0][0], -1.0f);                 // R of pixel (0,0) = 0
  EXPECT_NEAR(a[0][1][0][0], 128 / 127.5 - 1, 1e-7);     // G = 128
  EXPECT_FLOAT_EQ(a[0][2][0][0], 1.0f);                  // B = 255
  EXPECT_NEAR(a[0][0][0][1], 10 / 127.5 - 1, 1e-7);
  EXPECT_NEAR(a[0][2][1][1], 3 / 127.5 - 1, 1e-7);
}

TEST(Normalize, ImagenetHandComputed) {
  auto out = tlc::normalize(pixels_2x2(), tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::imagenet), at::kFloat,
                            tlc::Layout::nchw);
  auto a = out.accessor<float, 4>();
  EXPECT_NEAR(a[0][0][0][0], (0 / 255.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(a[0][1][0][0], (128 / 255.0 - 0.456) / 0.224, 1e-5);
  EXPECT_NEAR(a[0][2][0][0], (255 / 255.0 - 0.406) / 0.225, 1e-5);
  EXPECT_NEAR(a[0][0][1][0], (255 / 255.0 - 0.485) / 0.229, 1e-5);
}

TEST(Normalize, CaffeIsBgrMinusMean) {
  auto out = tlc::normalize(pixels_2x2(), tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::caffe), at::kFloat,
                            tlc::Layout::nchw);
  auto a = out.accessor<float, 4>();
  // Channel 0 is blue: pixel (0,0) has B=255.
  EXPECT_NEAR(a[0][0][0][0], 255 - 103.939, 1e-4);
  EXPECT_NEAR(a[0][1][0][0], 128 - 116.779, 1e-4);
  EXPECT_NEAR(a[0][2][0][0], 0 - 123.68, 1e-4);
  EXPECT_NEAR(a[0][0][0][1], 30 - 103.939, 1e-4);
}

TEST(Normalize, ChannelsLastMatchesNchwValues) {
  at::manual_seed(3);
  auto u8 = at::randint(0, 256, {3, 5, 7, 3}, at::kByte);
  auto spec = tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::imagenet);
  auto a = tlc::normalize(u8, spec, at::kFloat, tlc::Layout::nchw);
  auto b = tlc::normalize(u8, spec, at::kFloat, tlc::Layout::nhwc);
  EXPECT_TRUE(b.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(at::equal(a, b.contiguous()));
}

TEST(Normalize, FlipMirrorsOnlyFlaggedImages) {
  at::manual_seed(4);
  auto u8 = at::randint(0, 256, {2, 3, 5, 3}, at::kByte);
  auto spec = tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::minus1to1);
  auto plain = tlc::normalize(u8, spec, at::kFloat, tlc::Layout::nchw);
  auto flipped = tlc::normalize(u8, spec, at::kFloat, tlc::Layout::nchw, at::tensor({0, 1}, at::kByte));
  EXPECT_TRUE(at::equal(flipped[0], plain[0]));
  EXPECT_TRUE(at::equal(flipped[1], plain[1].flip({2})));
}

TEST(Normalize, MatchesTheSpecFormulaExactly) {
  // The dispatcher (parallel, chunked) must give exactly the spec's fused multiply-add for every element.
  at::manual_seed(5);
  auto u8 = at::randint(0, 256, {5, 9, 11, 3}, at::kByte);
  auto spec = tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::imagenet);
  auto out = tlc::normalize(u8, spec, at::kFloat, tlc::Layout::nchw).contiguous();
  auto in = u8.accessor<uint8_t, 4>();
  auto o = out.accessor<float, 4>();
  for (int n = 0; n < 5; ++n)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 11; ++x)
          ASSERT_EQ(o[n][c][y][x], std::fmaf(float(in[n][y][x][c]), spec.scale[c], spec.shift[c]))
              << "at n=" << n << " c=" << c << " y=" << y << " x=" << x;
}

TEST(Normalize, ReducedPrecisionRoundsFromFp32) {
  at::manual_seed(6);
  auto u8 = at::randint(0, 256, {2, 4, 4, 3}, at::kByte);
  auto spec = tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::imagenet);
  auto f = tlc::normalize(u8, spec, at::kFloat, tlc::Layout::nchw);
  auto bf = tlc::normalize(u8, spec, at::kBFloat16, tlc::Layout::nchw);
  auto h = tlc::normalize(u8, spec, at::kHalf, tlc::Layout::nhwc);
  EXPECT_EQ(bf.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(bf, f.to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(h.contiguous(), f.to(at::kHalf)));
}

TEST(Normalize, RejectsWrongInputs) {
  auto spec = tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::minus1to1);
  EXPECT_THROW(tlc::normalize(at::zeros({1, 4, 4, 4}, at::kByte), spec, at::kFloat, tlc::Layout::nchw), tlc::Error);
  EXPECT_THROW(tlc::normalize(at::zeros({1, 4, 4, 3}, at::kFloat), spec, at::kFloat, tlc::Layout::nchw), tlc::Error);
  EXPECT_THROW(tlc::normalize(at::zeros({2, 4, 4, 3}, at::kByte), spec, at::kFloat, tlc::Layout::nchw,
                              at::zeros({3}, at::kByte)),
               tlc::Error);
  EXPECT_THROW(tlc::parse_normalize_mode("unit"), tlc::Error);
}

TEST(Normalize, OutFormWritesEveryElementOfAPoisonedBuffer) {
  at::manual_seed(7);
  auto u8 = at::randint(0, 256, {3, 5, 7, 3}, at::kByte);
  auto flip = at::tensor(std::vector<uint8_t>{1, 0, 1}, at::kByte);
  auto spec = tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::imagenet);
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (auto layout : {tlc::Layout::nchw, tlc::Layout::nhwc}) {
      auto ref = tlc::normalize(u8, spec, dtype, layout, flip);
      at::Tensor out = layout == tlc::Layout::nchw
                           ? at::full({3, 3, 5, 7}, NAN, dtype)
                           : at::full({3, 5, 7, 3}, NAN, dtype).permute({0, 3, 1, 2});  // channels-last
      tlc::normalize_out(u8, spec, flip, out);
      EXPECT_FALSE(out.isnan().any().item<bool>());
      EXPECT_TRUE(at::equal(out, ref)) << c10::toString(dtype);
      EXPECT_TRUE(out.is_contiguous(layout == tlc::Layout::nchw ? at::MemoryFormat::Contiguous
                                                                : at::MemoryFormat::ChannelsLast));
    }
  }
}

TEST(Normalize, OutFormRejectsWrongOutputs) {
  auto u8 = at::zeros({2, 4, 4, 3}, at::kByte);
  auto spec = tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::minus1to1);
  at::Tensor wrong_shape = at::empty({2, 3, 4, 5});
  EXPECT_THROW(tlc::normalize_out(u8, spec, at::Tensor(), wrong_shape), tlc::Error);
  at::Tensor wrong_type = at::empty({2, 3, 4, 4}, at::kDouble);
  EXPECT_THROW(tlc::normalize_out(u8, spec, at::Tensor(), wrong_type), tlc::Error);
  at::Tensor strided = at::empty({2, 3, 4, 8}).narrow(3, 0, 4);  // neither contiguous nor channels-last
  EXPECT_THROW(tlc::normalize_out(u8, spec, at::Tensor(), strided), tlc::Error);
}
