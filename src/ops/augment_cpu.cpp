// The reference augmentation op: plain loops, written to be read against the spec in augment.h.
#include <algorithm>
#include <cmath>

#include "tlc/augment.h"

namespace tlc {

namespace {

// OpenCV's BORDER_REFLECT: ... 2 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...
int64_t reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

}  // namespace

void augment_cpu(const uint8_t* src, int64_t n, int64_t h, int64_t w, const float* params, const NormalizeSpec& spec,
                 float* dst, Layout layout) {
  for (int64_t b = 0; b < n; ++b) {
    const float* m = params + b * kViewParamFloats;
    const float bright = m[9], contrast = m[10], sat = m[11];
    const uint8_t* img = src + b * h * w * 3;
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const float fx = static_cast<float>(x), fy = static_cast<float>(y);
        const float u = m[0] * fx + m[1] * fy + m[2];
        const float v = m[3] * fx + m[4] * fy + m[5];
        const float q = m[6] * fx + m[7] * fy + m[8];
        const float sx = u / q, sy = v / q;
        const float x0f = std::floor(sx), y0f = std::floor(sy);
        const float ax = sx - x0f, ay = sy - y0f;
        const int64_t x0 = reflect(static_cast<int64_t>(x0f), w), x1 = reflect(static_cast<int64_t>(x0f) + 1, w);
        const int64_t y0 = reflect(static_cast<int64_t>(y0f), h), y1 = reflect(static_cast<int64_t>(y0f) + 1, h);
        const uint8_t* p00 = img + (y0 * w + x0) * 3;
        const uint8_t* p01 = img + (y0 * w + x1) * 3;
        const uint8_t* p10 = img + (y1 * w + x0) * 3;
        const uint8_t* p11 = img + (y1 * w + x1) * 3;
        float r[3];
        for (int c = 0; c < 3; ++c) {
          const float top = (1 - ax) * static_cast<float>(p00[c]) + ax * static_cast<float>(p01[c]);
          const float bot = (1 - ax) * static_cast<float>(p10[c]) + ax * static_cast<float>(p11[c]);
          r[c] = (1 - ay) * top + ay * bot;
          r[c] = 127.5f + contrast * (r[c] * bright - 127.5f);
        }
        if (sat != 1) {
          const float g = 0.299f * r[0] + 0.587f * r[1] + 0.114f * r[2];
          for (float& rc : r) rc = g + sat * (rc - g);
        }
        for (float& rc : r) rc = std::min(255.0f, std::max(0.0f, rc));
        for (int c = 0; c < 3; ++c) {
          const int sc = spec.bgr ? 2 - c : c;
          const float out = std::fmaf(r[sc], spec.scale[c], spec.shift[c]);
          const int64_t o = layout == Layout::nchw ? ((b * 3 + c) * h + y) * w + x : ((b * h + y) * w + x) * 3 + c;
          dst[o] = out;
        }
      }
    }
  }
}

}  // namespace tlc
