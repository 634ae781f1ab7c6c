#include "jpeg_header.h"

#include <cstring>

#include "byte_order.h"

namespace tlc {
namespace {

using bytes::rd16;
using bytes::rd32;

// The orientation tag of an APP1 "Exif" payload (s, slen); 1 when absent or unreadable.
int exif_orientation(const uint8_t* s, std::size_t slen) {
  if (slen < 14 || std::memcmp(s, "Exif\0\0", 6) != 0) return 1;
  const uint8_t* t = s + 6;
  const std::size_t tlen = slen - 6;
  const bool le = t[0] == 'I' && t[1] == 'I';
  if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
  const std::size_t ifd = rd32(t + 4, le);  // size_t: an offset near 2^32 must not wrap the check below
  if (ifd > tlen || tlen - ifd < 2) return 1;
  const uint16_t count = rd16(t + ifd, le);
  for (std::size_t k = 0; k < count; ++k) {
    const std::size_t e = ifd + 2 + 12 * k;
    if (e > tlen || tlen - e < 12) return 1;
    if (rd16(t + e, le) == 0x0112) {
      const uint16_t v = rd16(t + e + 8, le);
      return (v >= 1 && v <= 8) ? v : 1;
    }
  }
  return 1;
}

}  // namespace

JpegHeader read_jpeg_header(const uint8_t* d, std::size_t n) {
  JpegHeader h;
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return h;
  h.ends_with_eoi = d[n - 2] == 0xFF && d[n - 1] == 0xD9;
  bool exif_seen = false;
  std::size_t i = 2;
  while (i + 4 <= n) {
    if (d[i] != 0xFF) return h;  // not at a marker: damaged headers
    const uint8_t marker = d[i + 1];
    if (marker == 0xFF) { ++i; continue; }  // fill byte
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) { i += 2; continue; }  // no length
    if (marker == 0xD9) return h;  // end of image before any scan
    const std::size_t seg = (d[i + 2] << 8) | d[i + 3];
    if (seg < 2 || i + 2 + seg > n) return h;
    const uint8_t* s = d + i + 4;
    const std::size_t slen = seg - 2;
    if (marker == 0xDA) {
      h.parsed = h.sof >= 0;
      return h;
    }
    if (marker == 0xE1 && !exif_seen && slen >= 6 && std::memcmp(s, "Exif\0\0", 6) == 0) {
      exif_seen = true;  // the first EXIF block decides, as on the CPU path
      h.orientation = exif_orientation(s, slen);
    } else if (marker == 0xEE && slen >= 12 && std::memcmp(s, "Adobe", 5) == 0) {
      h.adobe_transform = s[11];
    } else if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (h.sof >= 0 || slen < 6) return h;  // two frames (hierarchical) or a short header
      h.sof = marker;
      h.precision = s[0];
      h.height = (s[1] << 8) | s[2];
      h.width = (s[3] << 8) | s[4];
      h.components = s[5];
      if (slen < 6u + 3u * h.components) return h;
      h.rgb_ids = h.components == 3 && s[6] == 'R' && s[9] == 'G' && s[12] == 'B';
    }
    i += 2 + seg;
  }
  return h;
}

int jpeg_exif_orientation(const uint8_t* d, std::size_t n) { return read_jpeg_header(d, n).orientation; }

std::string gpu_jpeg_refusal(const uint8_t* d, std::size_t n, int64_t max_pixels, JpegHeader* header) {
  const JpegHeader h = read_jpeg_header(d, n);
  if (header) *header = h;
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return "not a JPEG";
  if (!h.parsed) return "JPEG headers not readable";
  if (h.sof == 0xC2 || h.sof == 0xC6 || h.sof == 0xCA || h.sof == 0xCE) return "progressive JPEG";
  if (h.sof != 0xC0 && h.sof != 0xC1) return "JPEG coding the GPU decoder does not take (arithmetic, lossless or hierarchical)";
  if (h.precision != 8) return std::to_string(h.precision) + "-bit JPEG";
  if (h.components == 1) return "grayscale JPEG";
  if (h.components != 3) return std::to_string(h.components) + "-component JPEG (CMYK/YCCK)";
  if (h.rgb_ids || h.adobe_transform == 0) return "JPEG stored as RGB, not YCbCr";
  if (h.width <= 0 || h.height <= 0) return "JPEG without a size in its frame header";
  if (static_cast<int64_t>(h.width) * h.height > max_pixels) return "image above the pixel limit";
  if (h.orientation != 1) return "EXIF-rotated JPEG";
  if (!h.ends_with_eoi) return "JPEG without its end marker (truncated or trailing data)";
  return "";
}

}  // namespace tlc
