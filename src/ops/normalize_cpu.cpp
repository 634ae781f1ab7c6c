// The reference normalize op: plain loops, written to be read against the spec in normalize.h.
#include <cmath>

#include "tlc/normalize.h"

namespace tlc {

void normalize_cpu(const uint8_t* src, int64_t n, int64_t h, int64_t w, const NormalizeSpec& spec,
                   const uint8_t* flip, float* dst, Layout layout) {
  for (int64_t b = 0; b < n; ++b) {
    const bool f = flip != nullptr && flip[b] != 0;
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sx = f ? w - 1 - x : x;
        const uint8_t* px = src + ((b * h + y) * w + sx) * 3;
        for (int c = 0; c < 3; ++c) {
          const int sc = spec.bgr ? 2 - c : c;
          const float v = std::fmaf(static_cast<float>(px[sc]), spec.scale[c], spec.shift[c]);
          const int64_t o = layout == Layout::nchw ? ((b * 3 + c) * h + y) * w + x : ((b * h + y) * w + x) * 3 + c;
          dst[o] = v;
        }
      }
    }
  }
}

}  // namespace tlc
