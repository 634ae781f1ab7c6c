// The CUDA resize kernel's pixel code, tested without a GPU: cuda/resize_tile.h runs on the CPU for every
// output pixel and is compared with tlc::resize_to_square (cv::resize), the CPU decode path it replaces
// after nvJPEG. Sources are random noise (the worst case for rounding) and, at times, views into a larger
// image, so that the row pitch differs from the width. The contract is |diff| <= 1 with a tiny mean; with
// the OpenCV whose resize.cpp the emulation was written against (4.6) it is bit-exact, and that is checked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../cuda/resize_tile.h"
#include "../src/data/resize.h"

namespace {

using tlc::cuda::ResizeJob;

const char* const kModeName[] = {"stretch", "crop", "pad"};
constexpr bool kExactOpenCv = CV_VERSION_MAJOR == 4 && CV_VERSION_MINOR == 6;

// w x h of noise; with `margin`, a view into a larger image (row pitch > w * 3, unaligned start).
cv::Mat noise_image(int w, int h, std::mt19937& rng, int margin = 0) {
  cv::Mat big(h + 2 * margin, w + 3 * margin, CV_8UC3);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int y = 0; y < big.rows; ++y)
    for (int x = 0; x < big.cols * 3; ++x) big.ptr<uint8_t>(y)[x] = static_cast<uint8_t>(byte(rng));
  return big(cv::Rect(margin, margin, w, h));
}

ResizeJob job_for(const cv::Mat& img, int size, int mode) {
  return tlc::cuda::make_resize_job(img.data, static_cast<int64_t>(img.step), img.cols, img.rows, size, mode);
}

std::vector<uint8_t> emulate(const cv::Mat& img, int size, int mode) {
  const ResizeJob j = job_for(img, size, mode);
  std::vector<uint8_t> out(static_cast<size_t>(size) * size * 3);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      tlc::cuda::resize_pixel(j, size, x, y, &out[(static_cast<size_t>(y) * size + x) * 3]);
  return out;
}

std::vector<uint8_t> reference(const cv::Mat& img, int size, int mode) {
  std::vector<uint8_t> out(static_cast<size_t>(size) * size * 3, 0xAB);
  tlc::resize_to_square(img, size, static_cast<tlc::ResizeMode>(mode), out.data());
  return out;
}

struct Diff {
  int max = 0;
  int64_t differing = 0, total = 0, sum = 0;
  double mean() const { return total ? static_cast<double>(sum) / total : 0.0; }
  void add(const Diff& d) {
    max = std::max(max, d.max);
    differing += d.differing;
    total += d.total;
    sum += d.sum;
  }
};

// Compares an emulated output with the reference; outside the job's rectangle both must be exactly 0.
Diff compare(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, const ResizeJob& j, int size) {
  Diff d;
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const bool inside = x >= j.dst_x && y >= j.dst_y && x < j.dst_x + j.dst_w && y < j.dst_y + j.dst_h;
      for (int c = 0; c < 3; ++c) {
        const size_t i = (static_cast<size_t>(y) * size + x) * 3 + c;
        const int e = std::abs(int(got[i]) - int(want[i]));
        if (!inside) {
          EXPECT_EQ(want[i], 0) << "reference border at " << x << "," << y;
          EXPECT_EQ(got[i], 0) << "emulated border at " << x << "," << y;
          continue;
        }
        d.max = std::max(d.max, e);
        d.differing += e != 0;
        d.sum += e;
        ++d.total;
      }
    }
  return d;
}

TEST(ResizeKernel, MatchesResizeToSquare) {
  const int shapes[][2] = {{1, 1},     {1, 9},     {9, 1},     {7, 5},    {2, 2},     {161, 159}, {320, 240},
                           {240, 320}, {500, 375}, {1000, 17}, {17, 1000}, {160, 160}, {320, 320}, {80, 80},
                           {112, 112}, {320, 100}, {100, 320}, {224, 224}, {31, 31},  {62, 62},   {97, 300},
                           {300, 97},  {640, 480}, {33, 47}};
  const int sizes[] = {160, 32, 31, 224};
  std::mt19937 rng(20240611);
  Diff per_mode[3];
  int case_no = 0;
  for (const auto& s : shapes)
    for (int size : sizes)
      for (int mode = 0; mode < 3; ++mode) {
        const cv::Mat img = noise_image(s[0], s[1], rng, (case_no++ % 2) ? 3 : 0);
        const ResizeJob j = job_for(img, size, mode);
        const Diff d = compare(emulate(img, size, mode), reference(img, size, mode), j, size);
        SCOPED_TRACE(testing::Message() << s[0] << "x" << s[1] << " -> " << size << " " << kModeName[mode]);
        EXPECT_LE(d.max, 1);
        EXPECT_LT(d.mean(), 0.01);
        per_mode[mode].add(d);
      }
  for (int mode = 0; mode < 3; ++mode) {
    std::printf("[ resize   ] %-7s max |diff| %d, mean %.3g, %lld of %lld values differ\n", kModeName[mode],
                per_mode[mode].max, per_mode[mode].mean(), static_cast<long long>(per_mode[mode].differing),
                static_cast<long long>(per_mode[mode].total));
    if (kExactOpenCv) {
      EXPECT_EQ(per_mode[mode].differing, 0) << kModeName[mode];
    }
  }
}

// Random shapes and sizes, biased towards the special paths: integer factors, upscales, one axis up and
// the other down.
TEST(ResizeKernel, RandomShapes) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> side(1, 600), target(1, 240), factor(1, 4), mode_of(0, 2);
  for (int t = 0; t < 160; ++t) {
    int w = side(rng), h = side(rng), size = target(rng);
    if (t % 4 == 1) size = target(rng) / 2 + 1, w = size * factor(rng), h = size * factor(rng);
    if (t % 4 == 2) w = w % 60 + 1, h = h % 60 + 1;
    if (t % 4 == 3) size = side(rng) % 120 + 1, w = std::max(1, size + side(rng) % 7 - 3), h = 2 * size + 1;
    const int mode = mode_of(rng);
    const cv::Mat img = noise_image(w, h, rng, t % 2);
    const Diff d = compare(emulate(img, size, mode), reference(img, size, mode), job_for(img, size, mode), size);
    SCOPED_TRACE(testing::Message() << w << "x" << h << " -> " << size << " " << kModeName[mode]);
    EXPECT_LE(d.max, kExactOpenCv ? 0 : 1);
    EXPECT_LT(d.mean(), 0.01);
  }
}

// Integer factors take OpenCV's integer "area fast" path; the emulation must match it bit for bit.
TEST(ResizeKernel, IntegerAreaDownscaleIsExact) {
  const int cases[][3] = {{320, 320, 160}, {480, 480, 160}, {640, 640, 160}, {448, 448, 224}, {320, 480, 160},
                          {160, 320, 160}, {62, 93, 31},    {96, 64, 32},    {2, 2, 1},       {7, 7, 1}};
  std::mt19937 rng(7);
  for (const auto& c : cases) {
    const cv::Mat img = noise_image(c[0], c[1], rng, 2);
    const Diff d = compare(emulate(img, c[2], 0), reference(img, c[2], 0), job_for(img, c[2], 0), c[2]);
    EXPECT_EQ(d.max, 0) << c[0] << "x" << c[1] << " -> " << c[2];
  }
}

// The rectangles of make_resize_job are the ones resize_to_square uses.
TEST(ResizeKernel, GeometryMatchesResizeToSquare) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> side(1, 700), target(1, 300);
  for (int t = 0; t < 300; ++t) {
    const int w = t < 4 ? 1 + t % 2 : side(rng), h = t < 4 ? 1 + t / 2 : side(rng), size = target(rng);
    // Pad: the nonzero bounding box of a white image's output.
    const cv::Mat white(h, w, CV_8UC3, cv::Scalar(255, 255, 255));
    const std::vector<uint8_t> out = reference(white, size, 2);
    int x0 = size, y0 = size, x1 = -1, y1 = -1;
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x)
        if (out[(static_cast<size_t>(y) * size + x) * 3] != 0)
          x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
    const ResizeJob p = job_for(white, size, 2);
    EXPECT_EQ(p.dst_x, x0) << w << "x" << h << " -> " << size;
    EXPECT_EQ(p.dst_y, y0) << w << "x" << h << " -> " << size;
    EXPECT_EQ(p.dst_w, x1 - x0 + 1) << w << "x" << h << " -> " << size;
    EXPECT_EQ(p.dst_h, y1 - y0 + 1) << w << "x" << h << " -> " << size;
    // Crop: the centred square of resize.cpp; stretch: everything.
    const int sq = std::min(w, h);
    const ResizeJob c = job_for(white, size, 1);
    EXPECT_EQ(c.src, white(cv::Rect((w - sq) / 2, (h - sq) / 2, sq, sq)).data);
    EXPECT_TRUE(c.src_w == sq && c.src_h == sq && c.dst_x == 0 && c.dst_y == 0 && c.dst_w == size && c.dst_h == size);
    const ResizeJob s = job_for(white, size, 0);
    EXPECT_TRUE(s.src == white.data && s.src_w == w && s.src_h == h && s.dst_w == size && s.dst_h == size);
  }
}

// The hand-written roundings agree with the library ones they replace.
TEST(ResizeKernel, RoundingHelpers) {
  namespace rz = tlc::cuda::rz;
  for (int i = 0; i <= 4000; ++i) {
    const double x = i * 0.25, y = i * 0.125 + 1e-9;
    EXPECT_EQ(rz::round_away(x), std::lround(x)) << x;
    EXPECT_EQ(rz::round_away(y), std::lround(y)) << y;
    EXPECT_EQ(rz::round_even(x), static_cast<int>(std::nearbyint(x))) << x;  // default mode: half to even
    EXPECT_EQ(rz::round_even(static_cast<float>(x)), static_cast<int>(std::nearbyint(static_cast<float>(x)))) << x;
  }
  EXPECT_EQ(rz::round_away(0.49999999999999994), 0);  // floor(x + 0.5) would give 1
}

// The kernel's flat index over a batch (resize_flat): every byte written once, nothing past the end, each
// image where its index says.
TEST(ResizeKernel, BatchIndexing) {
  std::mt19937 rng(3);
  const int size = 31;
  std::vector<cv::Mat> imgs = {noise_image(100, 60, rng, 1), noise_image(20, 45, rng), noise_image(31, 31, rng, 2),
                               noise_image(1, 1, rng)};
  std::vector<ResizeJob> jobs;
  for (size_t k = 0; k < imgs.size(); ++k) jobs.push_back(job_for(imgs[k], size, static_cast<int>(k % 3)));
  const int64_t total = static_cast<int64_t>(jobs.size()) * size * size;
  std::vector<uint8_t> out(static_cast<size_t>(total) * 3 + 64, 0xAB);
  for (int64_t i = 0; i < total; ++i) tlc::cuda::resize_flat(jobs.data(), size, i, out.data());
  for (size_t k = 0; k < imgs.size(); ++k) {
    const std::vector<uint8_t> want = emulate(imgs[k], size, static_cast<int>(k % 3));
    EXPECT_EQ(0, std::memcmp(out.data() + k * want.size(), want.data(), want.size())) << "image " << k;
  }
  for (size_t i = static_cast<size_t>(total) * 3; i < out.size(); ++i) ASSERT_EQ(out[i], 0xAB) << "past the end";
}

}  // namespace
