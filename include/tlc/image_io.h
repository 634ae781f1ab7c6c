#pragma once
// Decoding and resizing: bytes or a file in, a size x size x 3 RGB uint8 image out.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tlc {

// How an image of another aspect ratio becomes size x size:
//   stretch: scaled to size x size, aspect ratio not kept (Keras' image_dataset_from_directory default,
//            and what tlc always did; model files without a `resize` attribute mean this);
//   crop:    the centred square of side min(w,h) is cut out, then scaled (Keras crop_to_aspect_ratio,
//            fastai ResizeMethod.Crop at inference);
//   pad:     scaled so the longer side is `size`, centred on black (Keras pad_to_aspect_ratio,
//            fastai ResizeMethod.Pad with zeros).
enum class ResizeMode { stretch, crop, pad };
ResizeMode parse_resize_mode(const std::string& name);  // throws tlc::Error naming the choices
std::string to_string(ResizeMode mode);

struct DecodeOptions {
  int size = 160;                      // output is size x size
  ResizeMode resize = ResizeMode::stretch;
  int64_t max_pixels = 100'000'000;    // refuse larger images (decompression bombs)
  bool reduced_jpeg_decode = true;     // let libjpeg-turbo decode at 1/2, 1/4, 1/8 scale when the image is
                                       // still >= size after it (much faster; see docs/DESIGN.md)
};

struct DecodeStatus {
  bool ok = false;
  std::string error;    // why the image could not be used (when !ok)
  std::string warning;  // a decoder warning for an image that was still used (e.g. corrupt JPEG data)
  int width = 0, height = 0;  // of the encoded image
};

// Decodes JPEG (libjpeg-turbo), PNG, BMP, WebP, TIFF (OpenCV; the first page) and GIF (giflib; the first
// frame) from memory. Grayscale becomes RGB by repetition,
// alpha is dropped (as PIL's convert("RGB") and Keras do), 16-bit samples are scaled to 8 bits, JPEG EXIF
// orientation is applied. Writes size*size*3 bytes (RGB, row-major HWC) to `dst`. Never throws for bad
// data, never prints: problems are returned in the status.
DecodeStatus decode_resized(const uint8_t* data, std::size_t len, uint8_t* dst, const DecodeOptions& opt);

// Reads a file and decodes it as above. A missing or unreadable file is reported in the status.
DecodeStatus load_resized(const std::string& path, uint8_t* dst, const DecodeOptions& opt);

bool read_file_bytes(const std::string& path, std::vector<uint8_t>& out, std::string* error);

// Whether this build decodes GIF (giflib found at build time; GIF files are otherwise skipped with a reason).
bool gif_supported();

}  // namespace tlc
