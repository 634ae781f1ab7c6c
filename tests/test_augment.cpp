// The augmentation op: the --augment syntax and presets, the CPU reference against OpenCV's warpPerspective
// (an independent implementation of the same geometry), colour against hand-computed values, the plain and
// flipped views against the normalize op, and determinism of the drawn views.
#include <ATen/ATen.h>

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <set>

#include "test_util.h"
#include "tlc/augment.h"
#include "tlc/error.h"

namespace {

using tlc::AugmentSpec;

// A smooth image (bilinear interpolation is only well defined against OpenCV's 1/32-pixel fixed point on
// images without sharp edges), not square, so that width and height cannot be swapped unnoticed.
at::Tensor smooth_image(int64_t h, int64_t w) {
  at::Tensor t = at::empty({1, h, w, 3}, at::kByte);
  auto a = t.accessor<uint8_t, 4>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        a[0][y][x][c] = static_cast<uint8_t>(
            std::lround(127.5 + 100 * std::sin(0.21 * x + 0.13 * y + c) * std::cos(0.17 * y - 0.05 * x * c)));
  return t;
}

const tlc::NormalizeSpec kMinus1 = tlc::NormalizeSpec::from_mode(tlc::NormalizeMode::minus1to1);

// The op's output in 0..255 units (minus1to1: x * 127.5 + 127.5), [H,W,3].
at::Tensor to_pixels(const at::Tensor& out) { return (out[0].permute({1, 2, 0}) * 127.5 + 127.5).contiguous(); }

void expect_matches_opencv(const at::Tensor& img, const tlc::ViewParams& v) {
  const int64_t h = img.size(1), w = img.size(2);
  at::Tensor ours = to_pixels(tlc::augment(img, tlc::view_tensor({v}), kMinus1, at::kFloat, tlc::Layout::nchw));
  cv::Mat src(static_cast<int>(h), static_cast<int>(w), CV_8UC3, img.data_ptr<uint8_t>());
  cv::Mat m(3, 3, CV_64F);
  for (int i = 0; i < 9; ++i) m.at<double>(i / 3, i % 3) = v.m[i];
  cv::Mat ref;
  cv::warpPerspective(src, ref, m, cv::Size(static_cast<int>(w), static_cast<int>(h)),
                      cv::INTER_LINEAR | cv::WARP_INVERSE_MAP, cv::BORDER_REFLECT);
  at::Tensor r = at::from_blob(ref.data, {h, w, 3}, at::kByte).to(at::kFloat);
  at::Tensor diff = (ours - r).abs();
  // OpenCV interpolates with 1/32-pixel weights and rounds to uint8; the op keeps floats.
  EXPECT_LT(diff.max().item<float>(), 3.0f);
  EXPECT_LT(diff.mean().item<float>(), 0.6f);
}

}  // namespace

TEST(AugmentSpec, PresetsAndSyntax) {
  EXPECT_TRUE(tlc::parse_augment("none").none());
  EXPECT_TRUE(tlc::parse_augment("flip").flip_only());
  const AugmentSpec k = tlc::parse_augment("keras");
  EXPECT_TRUE(k.flip_h);
  EXPECT_EQ(k.rotate, 72);  // Keras' RandomRotation(0.2) is 0.2 of a full turn
  const AugmentSpec f = tlc::parse_augment("fastai");
  EXPECT_EQ(f.rotate, 10);
  EXPECT_EQ(f.zoom, 1.1);
  EXPECT_EQ(f.brightness, 0.2);
  EXPECT_EQ(f.contrast, 0.2);
  EXPECT_EQ(f.warp, 0.2);
  EXPECT_EQ(f.p, 0.75);
  const AugmentSpec c = tlc::parse_augment("flip,rotate=10,zoom=1.1,lighting=0.2");
  EXPECT_EQ(tlc::to_string(c), "flip,rotate=10,zoom=1.1,brightness=0.2,contrast=0.2");
  EXPECT_EQ(tlc::to_string(tlc::parse_augment("fastai,rotate=20")),
            "flip,rotate=20,zoom=1.1,warp=0.2,brightness=0.2,contrast=0.2,p=0.75");
  for (const char* s : {"none", "flip", "light", "keras", "fastai", "timm", "flip=hv,crop=0.5,saturation=0.3",
                        "vflip,translate=0.1,p=0.5", "zoom=0.8"}) {
    const AugmentSpec a = tlc::parse_augment(s);
    EXPECT_TRUE(tlc::parse_augment(tlc::to_string(a)) == a) << s << " -> " << tlc::to_string(a);
  }
  EXPECT_EQ(tlc::to_string(tlc::parse_augment("flip,p=0.5")), "flip");  // p means nothing to flips
  EXPECT_FALSE(tlc::describe(f).empty());
}

TEST(AugmentSpec, BadItemsNameTheItem) {
  for (const char* bad : {"", "rotate", "rotate=x", "rotate=200", "zoom=0", "blur=3", "flip=d", "none,flip", "flip,",
                          "p=1.5", "translate=-0.1"}) {
    try {
      tlc::parse_augment(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const tlc::Error& e) {
      EXPECT_NE(std::string(e.what()).find("--augment"), std::string::npos) << e.what();
    }
  }
  try {
    tlc::parse_augment("blur=3");
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("blur=3"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("fastai"), std::string::npos);  // and says the choices
  }
}

TEST(Augment, IdentityViewIsTheNormalizeOp) {
  const at::Tensor img = smooth_image(9, 13);
  const at::Tensor id = tlc::view_tensor({tlc::identity_view()});
  for (auto mode : {tlc::NormalizeMode::minus1to1, tlc::NormalizeMode::imagenet, tlc::NormalizeMode::caffe})
    for (auto layout : {tlc::Layout::nchw, tlc::Layout::nhwc}) {
      const auto spec = tlc::NormalizeSpec::from_mode(mode);
      EXPECT_TRUE(at::equal(tlc::augment(img, id, spec, at::kFloat, layout), tlc::normalize(img, spec, at::kFloat, layout)));
    }
}

TEST(Augment, FlipViewIsTheNormalizeOpsFlip) {
  const at::Tensor img = smooth_image(9, 13);
  AugmentSpec s;
  s.flip_h = true;
  // Find a drawn view that flips (each does with probability 0.5) and one that does not.
  int flipped = 0, plain = 0;
  for (uint64_t view = 0; view < 16; ++view) {
    const tlc::ViewParams v = tlc::draw_view(s, 9, 13, 7, 3, view);
    const bool f = v.m[0] < 0;
    (f ? flipped : plain)++;
    const at::Tensor mask = at::full({1}, f ? 1 : 0, at::kByte);
    EXPECT_TRUE(at::equal(tlc::augment(img, tlc::view_tensor({v}), kMinus1, at::kFloat, tlc::Layout::nchw),
                          tlc::normalize(img, kMinus1, at::kFloat, tlc::Layout::nchw, mask)));
  }
  EXPECT_GT(flipped, 0);
  EXPECT_GT(plain, 0);
}

TEST(Augment, GeometryMatchesOpenCVWarp) {
  const at::Tensor img = smooth_image(29, 37);
  // Fixed affine maps (rotation + zoom + shift) and a perspective one, and drawn views of each preset.
  tlc::ViewParams a;
  const double t = 0.3, z = 1.2;
  const float m[9] = {static_cast<float>(std::cos(t) / z), static_cast<float>(-std::sin(t) / z), 5.5f,
                      static_cast<float>(std::sin(t) / z), static_cast<float>(std::cos(t) / z), -3.25f, 0, 0, 1};
  std::copy(m, m + 9, a.m);
  expect_matches_opencv(img, a);
  tlc::ViewParams p = a;
  p.m[6] = 0.004f, p.m[7] = -0.003f;
  expect_matches_opencv(img, p);
  for (const char* preset : {"keras", "light", "fastai", "timm", "flip=hv,warp=0.4,translate=0.2,zoom=0.7"}) {
    AugmentSpec s = tlc::parse_augment(preset);
    s.brightness = s.contrast = s.saturation = 0;  // geometry only: OpenCV has no colour step
    for (uint64_t view = 0; view < 4; ++view) {
      SCOPED_TRACE(std::string(preset) + " view " + std::to_string(view));
      expect_matches_opencv(img, tlc::draw_view(s, 29, 37, 42, 5, view));
    }
  }
}

TEST(Augment, ColourHandComputed) {
  std::vector<uint8_t> px = {200, 100, 50};
  const at::Tensor img = at::tensor(px, at::kByte).reshape({1, 1, 1, 3});
  tlc::ViewParams v;
  v.brightness = 1.2f, v.contrast = 0.8f, v.saturation = 1.5f;
  at::Tensor out = to_pixels(tlc::augment(img, tlc::view_tensor({v}), kMinus1, at::kFloat, tlc::Layout::nchw));
  double s[3];
  for (int c = 0; c < 3; ++c) s[c] = 127.5 + 0.8 * (px[c] * 1.2 - 127.5);
  const double g = 0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2];
  for (int c = 0; c < 3; ++c) {
    const double want = std::min(255.0, std::max(0.0, g + 1.5 * (s[c] - g)));
    EXPECT_NEAR(out[0][0][c].item<double>(), want, 1e-3) << "channel " << c;
  }
}

TEST(Augment, ViewsAreDrawnFromSeedKeyAndView) {
  const AugmentSpec s = tlc::parse_augment("fastai");
  auto same = [](const tlc::ViewParams& a, const tlc::ViewParams& b) {
    return std::equal(a.m, a.m + 9, b.m) && a.brightness == b.brightness && a.contrast == b.contrast;
  };
  EXPECT_TRUE(same(tlc::draw_view(s, 64, 64, 1, 2, 3), tlc::draw_view(s, 64, 64, 1, 2, 3)));
  EXPECT_FALSE(same(tlc::draw_view(s, 64, 64, 1, 2, 3), tlc::draw_view(s, 64, 64, 2, 2, 3)));
  EXPECT_FALSE(same(tlc::draw_view(s, 64, 64, 1, 2, 3), tlc::draw_view(s, 64, 64, 1, 4, 3)));
  EXPECT_FALSE(same(tlc::draw_view(s, 64, 64, 1, 2, 3), tlc::draw_view(s, 64, 64, 1, 2, 4)));
  // The same batch of views twice gives the same pixels.
  const at::Tensor img = at::cat({smooth_image(16, 16), smooth_image(16, 16).flip(1)});
  const at::Tensor prm = tlc::view_tensor({tlc::draw_view(s, 16, 16, 9, 0, 0), tlc::draw_view(s, 16, 16, 9, 1, 0)});
  EXPECT_TRUE(at::equal(tlc::augment(img, prm, kMinus1, at::kFloat, tlc::Layout::nhwc),
                        tlc::augment(img, prm, kMinus1, at::kFloat, tlc::Layout::nhwc)));
  // bf16 is the fp32 result rounded.
  EXPECT_TRUE(at::equal(tlc::augment(img, prm, kMinus1, at::kBFloat16, tlc::Layout::nchw),
                        tlc::augment(img, prm, kMinus1, at::kFloat, tlc::Layout::nchw).to(at::kBFloat16)));
}

TEST(Augment, DrawnRotationsStayInRange) {
  const AugmentSpec s = tlc::parse_augment("rotate=10");
  double lo = 0, hi = 0;
  for (uint64_t k = 0; k < 200; ++k) {
    const tlc::ViewParams v = tlc::draw_view(s, 32, 32, 3, k, 0);
    const double deg = std::atan2(v.m[3], v.m[0]) * 180 / M_PI;
    lo = std::min(lo, deg), hi = std::max(hi, deg);
  }
  EXPECT_GE(lo, -10.0001);
  EXPECT_LE(hi, 10.0001);
  EXPECT_LT(lo, -8);  // and they cover the range
  EXPECT_GT(hi, 8);
}

TEST(Augment, BadArgumentsAreErrors) {
  const at::Tensor img = smooth_image(4, 4);
  EXPECT_THROW(tlc::augment(img, at::zeros({2, 12}), kMinus1, at::kFloat, tlc::Layout::nchw), tlc::Error);
  EXPECT_THROW(tlc::augment(img.to(at::kFloat), at::zeros({1, 12}), kMinus1, at::kFloat, tlc::Layout::nchw), tlc::Error);
  EXPECT_THROW(tlc::augment(img, at::zeros({1, 12}), kMinus1, at::kInt, tlc::Layout::nchw), tlc::Error);
}
