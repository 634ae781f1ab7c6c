#pragma once
// What a JPEG's headers say, read without decoding: used to apply EXIF orientation on the CPU path and to
// decide which files the GPU decoder (nvJPEG) may take. Only the markers before the first scan are read.
#include <cstddef>
#include <cstdint>
#include <string>

namespace tlc {

// EXIF orientation (1..8) from a JPEG's APP1 segment; 1 when absent or unreadable.
int jpeg_exif_orientation(const uint8_t* d, std::size_t n);

struct JpegHeader {
  bool parsed = false;      // SOI, a frame header and a start of scan were found
  int sof = -1;             // frame marker: 0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...
  int precision = 0;        // bits per sample
  int width = 0, height = 0;
  int components = 0;
  bool rgb_ids = false;     // component ids 'R','G','B' (stored as RGB, not YCbCr)
  int adobe_transform = -1; // APP14 "Adobe" transform flag, -1 when absent (0: RGB/CMYK, no YCbCr)
  int orientation = 1;
  bool ends_with_eoi = false;  // the last two bytes are the end-of-image marker
};

JpegHeader read_jpeg_header(const uint8_t* d, std::size_t n);

// Why this JPEG goes to the CPU decoder instead of the GPU one ("" when the GPU decoder may take it): the
// GPU path decodes 8-bit baseline/extended Huffman YCbCr (3 components) files without EXIF rotation that end
// with their end marker and are within `max_pixels`; everything else (progressive, grayscale, CMYK, RGB-coded,
// arithmetic, 12-bit, rotated, truncated, over the pixel limit, not a JPEG) keeps libjpeg-turbo's path and
// its reports.
std::string gpu_jpeg_refusal(const uint8_t* d, std::size_t n, int64_t max_pixels, JpegHeader* header = nullptr);

}  // namespace tlc
