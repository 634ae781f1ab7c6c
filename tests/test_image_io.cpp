// Decoding and resizing: each format, gray and alpha, corrupt files.
#include "test_util.h"
#include "tlc/image_io.h"

using namespace tlc_test;

namespace {

std::vector<uint8_t> decode(const std::string& path, int size, tlc::DecodeStatus* st_out = nullptr) {
  std::vector<uint8_t> out(size * size * 3, 0);
  tlc::DecodeOptions o;
  o.size = size;
  auto st = tlc::load_resized(path, out.data(), o);
  if (st_out) *st_out = st;
  if (!st.ok) out.clear();
  return out;
}

cv::Mat solid_bgr(int w, int h, cv::Scalar bgr) { return cv::Mat(h, w, CV_8UC3, bgr); }

}  // namespace

TEST(ImageIO, EachFormatDecodesToRgb) {
  TempDir t;
  // A solid colour survives every codec almost exactly; R=200, G=100, B=30.
  cv::Mat img = solid_bgr(40, 30, cv::Scalar(30, 100, 200));
  for (std::string ext : {".png", ".bmp", ".jpg", ".webp"}) {
    std::string p = t.str("img" + ext);
    ASSERT_TRUE(cv::imwrite(p, img)) << ext;
    auto px = decode(p, 16);
    ASSERT_EQ(px.size(), 16u * 16 * 3) << ext;
    EXPECT_NEAR(px[0], 200, 3) << ext;
    EXPECT_NEAR(px[1], 100, 3) << ext;
    EXPECT_NEAR(px[2], 30, 3) << ext;
    EXPECT_NEAR(px[px.size() - 3], 200, 3) << ext;
  }
}

TEST(ImageIO, LargeJpegUsesReducedDecodeAndStaysClose) {
  TempDir t;
  cv::Mat img = solid_bgr(640, 480, cv::Scalar(30, 100, 200));
  cv::rectangle(img, cv::Point(0, 0), cv::Point(319, 479), cv::Scalar(0, 0, 0), -1);  // left half black
  std::string p = t.str("big.jpg");
  cv::imwrite(p, img);
  tlc::DecodeStatus st;
  auto px = decode(p, 32, &st);
  ASSERT_TRUE(st.ok) << st.error;
  EXPECT_EQ(st.width, 640);
  EXPECT_LT(px[(16 * 32 + 2) * 3], 10);        // left: black
  EXPECT_NEAR(px[(16 * 32 + 29) * 3], 200, 6);  // right: red channel 200
}

TEST(ImageIO, GrayAndAlphaBecomeRgb) {
  TempDir t;
  cv::Mat gray(10, 10, CV_8UC1, cv::Scalar(77));
  cv::imwrite(t.str("g.png"), gray);
  auto g = decode(t.str("g.png"), 10);
  ASSERT_FALSE(g.empty());
  EXPECT_EQ(g[0], 77);
  EXPECT_EQ(g[1], 77);
  EXPECT_EQ(g[2], 77);
  cv::Mat rgba(10, 10, CV_8UC4, cv::Scalar(30, 100, 200, 128));  // BGRA
  cv::imwrite(t.str("a.png"), rgba);
  auto a = decode(t.str("a.png"), 10);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a[0], 200);
  EXPECT_EQ(a[1], 100);
  EXPECT_EQ(a[2], 30);
  cv::Mat deep(10, 10, CV_16UC3, cv::Scalar(257 * 30, 257 * 100, 257 * 200));
  cv::imwrite(t.str("d.png"), deep);
  auto d = decode(t.str("d.png"), 10);
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0], 200);
}

TEST(ImageIO, ResizesToRequestedSquare) {
  TempDir t;
  cv::imwrite(t.str("r.png"), solid_bgr(7, 13, cv::Scalar(1, 2, 3)));
  auto px = decode(t.str("r.png"), 160);
  ASSERT_EQ(px.size(), 160u * 160 * 3);
  EXPECT_EQ(px[0], 3);
}

TEST(ImageIO, ExifOrientationIsApplied) {
  TempDir t;
  // A 20x10 JPEG, left half white; EXIF orientation 6 (rotate 90 clockwise) makes it 10x20 with the top white.
  cv::Mat img(10, 20, CV_8UC3, cv::Scalar(0, 0, 0));
  cv::rectangle(img, cv::Point(0, 0), cv::Point(9, 9), cv::Scalar(255, 255, 255), -1);
  std::vector<uint8_t> jpg;
  cv::imencode(".jpg", img, jpg, {cv::IMWRITE_JPEG_QUALITY, 100});
  // APP1 Exif segment with a single IFD0 entry: Orientation (0x0112), SHORT, count 1, value 6 (big-endian TIFF).
  const uint8_t app1[] = {0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8,
                          0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0};
  jpg.insert(jpg.begin() + 2, app1, app1 + sizeof app1);
  std::vector<uint8_t> out(20 * 20 * 3);
  tlc::DecodeOptions o;
  o.size = 20;
  auto st = tlc::decode_resized(jpg.data(), jpg.size(), out.data(), o);
  ASSERT_TRUE(st.ok) << st.error;
  EXPECT_GT(out[(2 * 20 + 10) * 3], 200);   // top row area: white after rotation
  EXPECT_LT(out[(17 * 20 + 10) * 3], 50);   // bottom: black
}

TEST(ImageIO, CorruptFilesAreReportedNotThrown) {
  TempDir t;
  write_text(t.path() / "zero.jpg", "");
  write_text(t.path() / "text.jpg", "this is not an image\n");
  cv::Mat img = class_image(0, 64, 3);
  std::vector<uint8_t> jpg;
  cv::imencode(".jpg", img, jpg);
  write_text(t.path() / "trunc.jpg", std::string(jpg.begin(), jpg.begin() + jpg.size() / 2));
  std::vector<uint8_t> png;
  cv::imencode(".png", img, png);
  write_text(t.path() / "trunc.png", std::string(png.begin(), png.begin() + png.size() / 2));
  for (auto name : {"zero.jpg", "text.jpg", "trunc.jpg", "trunc.png", "missing.png"}) {
    tlc::DecodeStatus st;
    auto px = decode(t.str(name), 16, &st);
    EXPECT_FALSE(st.ok) << name;
    EXPECT_FALSE(st.error.empty()) << name;
  }
  tlc::DecodeStatus st;
  decode(t.str("zero.jpg"), 16, &st);
  EXPECT_NE(st.error.find("0 bytes"), std::string::npos);
  decode(t.str("trunc.jpg"), 16, &st);
  EXPECT_NE(st.error.find("truncated"), std::string::npos) << st.error;
}

TEST(ImageIO, RefusesImagesAboveThePixelLimit) {
  TempDir t;
  cv::imwrite(t.str("big.jpg"), solid_bgr(300, 200, cv::Scalar(1, 2, 3)));
  std::vector<uint8_t> out(8 * 8 * 3);
  tlc::DecodeOptions o;
  o.size = 8;
  o.max_pixels = 300 * 200 - 1;
  auto st = tlc::load_resized(t.str("big.jpg"), out.data(), o);
  EXPECT_FALSE(st.ok);
  EXPECT_NE(st.error.find("--max-pixels"), std::string::npos);
}

TEST(ImageIO, FuzzRegressionsDecodeToErrorsNotCrashes) {
  // Inputs that once crashed the decoder (tests/fuzz/regressions, found by scripts/fuzz.sh).
  int n = 0;
  for (auto& e : fs::directory_iterator(source("tests/fuzz/regressions"))) {
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(tlc::read_file_bytes(e.path().string(), bytes, nullptr));
    std::vector<uint8_t> out(32 * 32 * 3);
    tlc::DecodeOptions o;
    o.size = 32;
    auto st = tlc::decode_resized(bytes.data(), bytes.size(), out.data(), o);
    EXPECT_FALSE(st.ok) << e.path();
    ++n;
  }
  EXPECT_GE(n, 1);
}
