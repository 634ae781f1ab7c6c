// Input formats beyond JPEG/PNG/BMP/WebP: GIF (first frame, giflib) and TIFF (first page, OpenCV), their
// header size checks, and the formats tlc does not read, named instead of "no class folders".
#include <array>
#include <opencv2/imgcodecs.hpp>

#include "test_util.h"
#include "tlc/error.h"
#include "tlc/image_io.h"
#include "tlc/run.h"

using namespace tlc_test;

namespace {

std::array<int, 3> px(const std::vector<uint8_t>& img, int size, int x, int y) {
  const size_t i = (static_cast<size_t>(y) * size + x) * 3;
  return {img[i], img[i + 1], img[i + 2]};
}

std::array<int, 3> coord(int x, int y) { return {10 * x + 1, 10 * y + 1, 7}; }

}  // namespace

// --- GIF and TIFF input, and formats tlc does not read ----------------------------------------------------

namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  const std::string s = read_text(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

tlc::DecodeStatus decode_file(const std::string& path, std::vector<uint8_t>& out, int size, int64_t max_pixels = 100'000'000) {
  out.assign(static_cast<size_t>(size) * size * 3, 0xAB);
  tlc::DecodeOptions opt;
  opt.size = size;
  opt.max_pixels = max_pixels;
  const auto bytes = read_bytes(path);
  return tlc::decode_resized(bytes.data(), bytes.size(), out.data(), opt);
}

}  // namespace

TEST(Formats, GifFirstFrameAndTiffFirstPageDecodeExactly) {
  TempDir t;
  // Written by Pillow, an encoder independent of the decoders under test. Pixel (x, y) of the first frame/page
  // is (10x+1, 10y+1, 7); the GIF is interlaced (Pillow's default from 16 pixels) and animated (a second, black
  // frame); the TIFF has a second, black page; one TIFF is LZW-compressed.
  const std::string py = t.str("make.py");
  write_text(py, R"(import sys
from PIL import Image
d = sys.argv[1]
img = Image.new("RGB", (20, 20))
img.putdata([(10 * x + 1, 10 * y + 1, 7) for y in range(20) for x in range(20)])
black = Image.new("RGB", (20, 20))
img.save(d + "/a.tiff", save_all=True, append_images=[black])
img.save(d + "/lzw.tif", compression="tiff_lzw")
pal = []
for y in range(20):
    for x in range(0, 20, 2):
        pal += [10 * x + 1, 10 * y + 1, 7]
p = Image.new("P", (20, 20))
p.putpalette(pal[:768])
p.putdata([min(255, y * 10 + x // 2) for y in range(20) for x in range(20)])
assert p.convert("RGB").getpixel((4, 3)) == (41, 31, 7)
frames = [p, Image.new("P", (20, 20))]
frames[1].putpalette([0, 0, 0] * 256)
p.save(d + "/a.gif", save_all=True, append_images=frames[1:], interlace=True)
p.convert("RGB").save(d + "/expected_gif.png")
)");
  auto r = run_command(q(TLC_PYTHON) + " " + q(py) + " " + q(t.str()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::vector<uint8_t> out;
  for (const char* f : {"a.tiff", "lzw.tif"}) {
    auto st = decode_file(t.str(f), out, 20);
    ASSERT_TRUE(st.ok) << f << ": " << st.error;
    for (int y = 0; y < 20; y += 3)
      for (int x = 0; x < 20; x += 3) ASSERT_EQ(px(out, 20, x, y), coord(x, y)) << f << " " << x << "," << y;
  }
  auto st = decode_file(t.str("a.gif"), out, 20);
  if (!tlc::gif_supported()) {  // a build without giflib (the GPU machine's bundle): a clear reason instead
    EXPECT_FALSE(st.ok);
    EXPECT_NE(st.error.find("libgif-dev"), std::string::npos) << st.error;
    return;
  }
  ASSERT_TRUE(st.ok) << st.error;
  cv::Mat expected = cv::imread(t.str("expected_gif.png"));  // BGR
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 20; ++x) {
      const cv::Vec3b e = expected.at<cv::Vec3b>(y, x);
      ASSERT_EQ(px(out, 20, x, y), (std::array<int, 3>{e[2], e[1], e[0]})) << x << "," << y;
    }
  // Sizes are checked against the pixel limit from the header, before decoding.
  for (const char* f : {"a.gif", "a.tiff"}) {
    st = decode_file(t.str(f), out, 20, 399);
    EXPECT_FALSE(st.ok) << f;
    EXPECT_NE(st.error.find("20x20, above the limit of 399 pixels"), std::string::npos) << f << ": " << st.error;
  }
  // A GIF whose header claims a 60000x60000 screen is refused before giflib runs.
  auto bytes = read_bytes(t.str("a.gif"));
  bytes[6] = bytes[8] = 0x60;
  bytes[7] = bytes[9] = 0xEA;
  out.assign(20 * 20 * 3, 0);
  tlc::DecodeOptions opt;
  opt.size = 20;
  st = tlc::decode_resized(bytes.data(), bytes.size(), out.data(), opt);
  EXPECT_FALSE(st.ok);
  EXPECT_NE(st.error.find("60000x60000"), std::string::npos) << st.error;
  // Truncated GIF: an error, not a crash.
  bytes = read_bytes(t.str("a.gif"));
  bytes.resize(bytes.size() / 3);
  st = tlc::decode_resized(bytes.data(), bytes.size(), out.data(), opt);
  EXPECT_FALSE(st.ok);
  EXPECT_FALSE(st.error.empty());
}

TEST(Formats, UnsupportedImageFormatsAreNamedInsteadOfNoClassFolders) {
  TempDir t;
  for (int i = 0; i < 12; ++i) write_text(t.path() / (i % 2 ? "cat" : "dog") / ("IMG_" + std::to_string(i) + ".HEIC"), "x");
  write_text(t.path() / "cat" / "photo.avif", "x");
  write_text(t.path() / "cat" / "Thumbs.db", "x");
  auto r = run_command(train_cmd(t.str(), source("models/tiny_cnn.pt"), t.str("run")));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("12 .heic files: HEIC is not supported"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 .avif file: AVIF is not supported"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Thumbs"), std::string::npos) << r.out;
  EXPECT_TRUE(tlc::has_image_extension("a.GIF") && tlc::has_image_extension("b.tif") && tlc::has_image_extension("c.TIFF"));
}
