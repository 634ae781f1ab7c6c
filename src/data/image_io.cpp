#include "tlc/image_io.h"

#include <turbojpeg.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <filesystem>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "byte_order.h"
#include "gif.h"
#include "jpeg_header.h"
#include "resize.h"

namespace tlc {
namespace {

struct TjDeleter {
  void operator()(void* h) const { if (h) tjDestroy(h); }
};

// One decompressor per thread: tjhandles are not thread-safe, and creating one per image costs time.
tjhandle thread_decompressor() {
  thread_local std::unique_ptr<void, TjDeleter> handle(tjInitDecompress());
  return handle.get();
}

bool is_jpeg(const uint8_t* d, std::size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

using bytes::rd16;
using bytes::rd32;

void apply_orientation(cv::Mat& m, int o) {
  switch (o) {
    case 2: cv::flip(m, m, 1); break;
    case 3: cv::rotate(m, m, cv::ROTATE_180); break;
    case 4: cv::flip(m, m, 0); break;
    case 5: cv::transpose(m, m); break;
    case 6: cv::rotate(m, m, cv::ROTATE_90_CLOCKWISE); break;
    case 7: cv::transpose(m, m); cv::flip(m, m, -1); break;
    case 8: cv::rotate(m, m, cv::ROTATE_90_COUNTERCLOCKWISE); break;
    default: break;
  }
}

// Decodes a JPEG with libjpeg-turbo into RGB; returns false (with `err`) if it cannot. Warnings that mean
// the data ended early make the image unusable (a grey lower part is not a training image); other warnings
// are kept and the image is used.
bool decode_jpeg(const uint8_t* d, std::size_t n, const DecodeOptions& opt, cv::Mat& out, DecodeStatus& st) {
  tjhandle h = thread_decompressor();
  if (!h) { st.error = "could not start the JPEG decoder"; return false; }
  int w = 0, hgt = 0, subsamp = 0, cs = 0;
  if (tjDecompressHeader3(h, d, static_cast<unsigned long>(n), &w, &hgt, &subsamp, &cs) != 0) {
    st.error = std::string("not a decodable JPEG: ") + tjGetErrorStr2(h);
    return false;
  }
  st.width = w;
  st.height = hgt;
  if (static_cast<int64_t>(w) * hgt > opt.max_pixels) {
    st.error = "image is " + std::to_string(w) + "x" + std::to_string(hgt) + ", above the limit of " +
               std::to_string(opt.max_pixels) + " pixels (raise --max-pixels if it is genuine)";
    return false;
  }
  if (cs == TJCS_CMYK || cs == TJCS_YCCK) return false;  // libjpeg-turbo 2.1 cannot give RGB: let OpenCV try
  int sw = w, sh = hgt;
  if (opt.reduced_jpeg_decode) {
    int nf = 0;
    tjscalingfactor* f = tjGetScalingFactors(&nf);
    for (int k = 0; k < nf; ++k) {
      if (f[k].num != 1 || (f[k].denom != 2 && f[k].denom != 4 && f[k].denom != 8)) continue;
      int cw = TJSCALED(w, f[k]), ch = TJSCALED(hgt, f[k]);
      if (cw >= opt.size && ch >= opt.size && cw * ch < sw * sh) { sw = cw; sh = ch; }
    }
  }
  out.create(sh, sw, CV_8UC3);
  if (tjDecompress2(h, d, static_cast<unsigned long>(n), out.data, sw, 0, sh, TJPF_RGB, 0) != 0) {
    std::string msg = tjGetErrorStr2(h);
    if (tjGetErrorCode(h) == TJERR_FATAL) { st.error = "JPEG decoding failed: " + msg; return false; }
    if (msg.find("Premature end") != std::string::npos) {
      st.error = "truncated JPEG (" + msg + ")";
      return false;
    }
    st.warning = msg;
  }
  apply_orientation(out, jpeg_exif_orientation(d, n));
  return true;
}

bool is_png(const uint8_t* d, std::size_t n) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  return n >= 8 && std::memcmp(d, sig, 8) == 0;
}

// Walks a PNG's chunk list up to IEND. A truncated PNG is caught here, before libpng would print
// "libpng error: ..." to the terminal for it.
bool png_is_complete(const uint8_t* d, std::size_t n) {
  std::size_t i = 8;
  while (i + 12 <= n) {
    std::size_t len = rd32(d + i, false);
    if (std::memcmp(d + i + 4, "IEND", 4) == 0) return true;
    if (len > n) return false;
    i += 12 + len;
  }
  return false;
}

bool is_bmp(const uint8_t* d, std::size_t n) { return n >= 26 && d[0] == 'B' && d[1] == 'M'; }
bool is_webp(const uint8_t* d, std::size_t n) {
  return n >= 16 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0;
}
// Classic TIFF, either byte order (BigTIFF is not read).
bool is_tiff(const uint8_t* d, std::size_t n) {
  return n >= 8 && ((d[0] == 'I' && d[1] == 'I' && d[2] == 42 && d[3] == 0) ||
                    (d[0] == 'M' && d[1] == 'M' && d[2] == 0 && d[3] == 42));
}

// ImageWidth (tag 256) and ImageLength (257) from a TIFF's first directory; 0x0 when not found there.
std::pair<int64_t, int64_t> tiff_size(const uint8_t* d, std::size_t n) {
  const bool le = d[0] == 'I';
  const std::size_t ifd = rd32(d + 4, le);
  if (ifd > n || n - ifd < 2) return {0, 0};
  const std::size_t count = rd16(d + ifd, le);
  int64_t w = 0, h = 0;
  for (std::size_t k = 0; k < count; ++k) {
    const std::size_t e = ifd + 2 + 12 * k;
    if (e + 12 > n) break;
    const uint16_t tag = rd16(d + e, le), type = rd16(d + e + 2, le);
    const int64_t v = type == 3 ? rd16(d + e + 8, le) : type == 4 ? rd32(d + e + 8, le) : 0;
    if (tag == 256) w = v;
    if (tag == 257) h = v;
  }
  return {w, h};
}

// Width and height from the header, without decoding, so that the pixel limit holds before any
// allocation (found by fuzzing: a 62-byte BMP header asking for gigabytes). 0x0 when not known.
std::pair<int64_t, int64_t> header_size(const uint8_t* d, std::size_t n) {
  if (is_png(d, n) && n >= 24) return {rd32(d + 16, false), rd32(d + 20, false)};
  if (is_bmp(d, n)) {
    const uint32_t hdr = rd32(d + 14, true);
    if (hdr == 12) return {rd16(d + 18, true), rd16(d + 20, true)};  // OS/2 BITMAPCOREHEADER
    const int32_t w = static_cast<int32_t>(rd32(d + 18, true)), h = static_cast<int32_t>(rd32(d + 22, true));
    return {std::llabs(w), std::llabs(h)};
  }
  if (is_webp(d, n) && n >= 30) {
    if (std::memcmp(d + 12, "VP8X", 4) == 0)
      return {1 + (d[24] | d[25] << 8 | d[26] << 16), 1 + (d[27] | d[28] << 8 | d[29] << 16)};
    if (std::memcmp(d + 12, "VP8L", 4) == 0 && n >= 25) {
      const uint32_t b = d[21] | d[22] << 8 | d[23] << 16 | uint32_t(d[24]) << 24;
      return {1 + (b & 0x3FFF), 1 + ((b >> 14) & 0x3FFF)};
    }
    if (std::memcmp(d + 12, "VP8 ", 4) == 0) return {rd16(d + 26, true) & 0x3FFF, rd16(d + 28, true) & 0x3FFF};
  }
  if (is_tiff(d, n)) return tiff_size(d, n);
  return {0, 0};
}

bool decode_other(const uint8_t* d, std::size_t n, const DecodeOptions& opt, cv::Mat& out, DecodeStatus& st) {
  // Only the formats tlc reads go to OpenCV: imdecode would otherwise try every codec it was built with
  // (DICOM, TIFF, JPEG 2000, OpenEXR, ...), and some of them abort the process on malformed input (found by
  // fuzzing: GDCM's assertion on a buffer with "DICM" at offset 128).
  if (!is_jpeg(d, n) && !is_png(d, n) && !is_bmp(d, n) && !is_webp(d, n) && !is_tiff(d, n)) {
    st.error = "not a JPEG, PNG, BMP, WebP, TIFF or GIF image (unknown format or corrupt header)";
    return false;
  }
  if (is_png(d, n) && !png_is_complete(d, n)) {
    st.error = "truncated PNG (the data ends before the IEND chunk)";
    return false;
  }
  const auto [hw, hh] = header_size(d, n);
  if (is_tiff(d, n) && (hw <= 0 || hh <= 0)) {
    // libtiff would allocate whatever a later directory asks for: only sizes checked here are decoded.
    st.error = "TIFF whose first directory gives no image size (corrupt or unusual header)";
    return false;
  }
  if (hw * hh > opt.max_pixels) {
    st.width = static_cast<int>(std::min<int64_t>(hw, INT32_MAX));
    st.height = static_cast<int>(std::min<int64_t>(hh, INT32_MAX));
    st.error = "image is " + std::to_string(hw) + "x" + std::to_string(hh) + ", above the limit of " +
               std::to_string(opt.max_pixels) + " pixels (raise --max-pixels if it is genuine)";
    return false;
  }
  cv::Mat raw;
  try {
    cv::Mat buf(1, static_cast<int>(n), CV_8U, const_cast<uint8_t*>(d));
    raw = cv::imdecode(buf, cv::IMREAD_UNCHANGED | (is_jpeg(d, n) ? 0 : cv::IMREAD_IGNORE_ORIENTATION));
  } catch (const cv::Exception& e) {
    st.error = std::string("image decoding failed: ") + e.what();
    return false;
  }
  if (raw.empty()) {
    if (st.error.empty()) st.error = "not a decodable image (unknown format or corrupt data)";
    return false;
  }
  st.width = raw.cols;
  st.height = raw.rows;
  if (static_cast<int64_t>(raw.cols) * raw.rows > opt.max_pixels) {
    st.error = "image is " + std::to_string(raw.cols) + "x" + std::to_string(raw.rows) + ", above the limit of " +
               std::to_string(opt.max_pixels) + " pixels (raise --max-pixels if it is genuine)";
    return false;
  }
  if (raw.depth() == CV_16U) raw.convertTo(raw, CV_8U, 1.0 / 257.0);
  else if (raw.depth() == CV_32F) raw.convertTo(raw, CV_8U, 255.0);
  else if (raw.depth() != CV_8U) raw.convertTo(raw, CV_8U);
  switch (raw.channels()) {
    case 1: cv::cvtColor(raw, out, cv::COLOR_GRAY2RGB); break;
    case 3: cv::cvtColor(raw, out, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(raw, out, cv::COLOR_BGRA2RGB); break;
    default: st.error = "unsupported channel count " + std::to_string(raw.channels()); return false;
  }
  st.error.clear();
  return true;
}

}  // namespace

DecodeStatus decode_resized(const uint8_t* data, std::size_t len, uint8_t* dst, const DecodeOptions& opt) {
  DecodeStatus st;
  if (len == 0) { st.error = "empty file (0 bytes)"; return st; }
  cv::Mat rgb;
  bool ok = false;
  if (is_jpeg(data, len)) {
    ok = decode_jpeg(data, len, opt, rgb, st);
    if (!ok && st.error.empty()) ok = decode_other(data, len, opt, rgb, st);  // CMYK JPEG
  } else if (is_gif(data, len)) {
    ok = decode_gif_first_frame(data, len, opt.max_pixels, rgb, st);  // OpenCV 4.6 has no GIF decoder
  } else {
    ok = decode_other(data, len, opt, rgb, st);
  }
  if (!ok) return st;
  resize_to_square(rgb, opt.size, opt.resize, dst);
  st.ok = true;
  return st;
}

bool read_file_bytes(const std::string& path, std::vector<uint8_t>& out, std::string* error) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    if (error) *error = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  out.clear();
  uint8_t buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) {
    if (error) *error = "read error (is it a folder or an unreadable file?)";
    return false;
  }
  return true;
}

DecodeStatus load_resized(const std::string& path, uint8_t* dst, const DecodeOptions& opt) {
  std::vector<uint8_t> bytes;
  DecodeStatus st;
  if (!read_file_bytes(path, bytes, &st.error)) return st;
  return decode_resized(bytes.data(), bytes.size(), dst, opt);
}

}  // namespace tlc
