#pragma once
// Unsigned integers read from file headers (JPEG/EXIF, TIFF, PNG, BMP) in either byte order.
#include <cstdint>

namespace tlc::bytes {

inline uint16_t rd16(const uint8_t* p, bool le) { return le ? (p[0] | p[1] << 8) : (p[0] << 8 | p[1]); }
inline uint32_t rd32(const uint8_t* p, bool le) {
  return le ? (p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24) : (uint32_t(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3]);
}

}  // namespace tlc::bytes
