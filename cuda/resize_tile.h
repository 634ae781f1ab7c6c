#pragma once
// The resize kernel's work, written once and compiled twice: by nvcc into the kernel (cuda/resize.cu) and by
// the host compiler into a CPU emulation (tests/test_resize_kernel.cpp) that is compared with
// tlc::resize_to_square (src/data/resize.cpp). Nothing here includes CUDA headers.
//
// Each output pixel is computed on its own, reproducing OpenCV 4's cv::resize for CV_8UC3 step by step:
//   - INTER_AREA, integer factors ("area fast"): integer sum; (sum + 2) >> 2 for 2x2, else sum * (1.f/area)
//     rounded half to even;
//   - INTER_AREA, other factors: the per-axis tap tables of computeResizeAreaTab (double geometry, float
//     weights), summed in float in OpenCV's order (taps of a row, then rows);
//   - INTER_LINEAR: 11-bit fixed-point weights, the horizontal pass in int, the vertical pass with
//     OpenCV's shifts ((b * (h >> 4)) >> 16, then (sum + 2) >> 2).
// Every float/double operation is spelled out as OpenCV rounds it, and on the device through the _rn
// intrinsics, so that nvcc cannot fuse a multiply and an add into one FMA (a different rounding).
#include <math.h>

#include <cstdint>

#ifndef TLC_HD
#if defined(__CUDACC__)
#define TLC_HD __host__ __device__ __forceinline__
#else
#define TLC_HD inline
#endif
#endif

namespace tlc::cuda {

struct ResizeJob {                  // one image of a batch
  const uint8_t* src;               // top-left of the source region to scale (crop offset applied), RGB
  int64_t pitch;                    // bytes per source row
  int src_w, src_h;                 // region size in pixels
  int dst_x, dst_y, dst_w, dst_h;   // where the scaled region lands in the size x size output; outside it is 0
};

namespace rz {

// IEEE round-to-nearest arithmetic, never fused into an FMA: on the device by the _rn intrinsics, on the
// host (g++ contracts across statements when built for an FMA target, e.g. -march=native) by the attribute.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define TLC_RZ_EXACT __attribute__((optimize("fp-contract=off")))
#else
#define TLC_RZ_EXACT
#endif
#if defined(__CUDA_ARCH__)
TLC_HD double dmul(double a, double b) { return __dmul_rn(a, b); }
TLC_HD double dadd(double a, double b) { return __dadd_rn(a, b); }
TLC_HD double ddiv(double a, double b) { return __ddiv_rn(a, b); }
TLC_HD float fmul(float a, float b) { return __fmul_rn(a, b); }
TLC_HD float fadd(float a, float b) { return __fadd_rn(a, b); }
TLC_HD float fdiv(float a, float b) { return __fdiv_rn(a, b); }  // exact even under --use_fast_math
#else
TLC_RZ_EXACT TLC_HD double dmul(double a, double b) { return a * b; }
TLC_RZ_EXACT TLC_HD double dadd(double a, double b) { return a + b; }
TLC_RZ_EXACT TLC_HD double ddiv(double a, double b) { return a / b; }
TLC_RZ_EXACT TLC_HD float fmul(float a, float b) { return a * b; }
TLC_RZ_EXACT TLC_HD float fadd(float a, float b) { return a + b; }
TLC_RZ_EXACT TLC_HD float fdiv(float a, float b) { return a / b; }
#endif

TLC_HD int imin(int a, int b) { return a < b ? a : b; }
TLC_HD int imax(int a, int b) { return a > b ? a : b; }
TLC_HD int iclamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// cvRound: half to even (SSE2 conversion in the default rounding mode). x - floor(x) is exact.
TLC_HD int round_even(double x) {
  const double r = floor(x), d = x - r;
  const int i = static_cast<int>(r);
  return (d > 0.5 || (d == 0.5 && (i & 1))) ? i + 1 : i;
}
TLC_HD int round_even(float x) {
  const float r = floorf(x), d = x - r;
  const int i = static_cast<int>(r);
  return (d > 0.5f || (d == 0.5f && (i & 1))) ? i + 1 : i;
}
// std::lround of a non-negative value: half away from zero (floor(x + 0.5) is wrong just below x.5).
TLC_HD int round_away(double x) {
  const double r = floor(x);
  return static_cast<int>(r) + (x - r >= 0.5 ? 1 : 0);
}
TLC_HD uint8_t sat_u8(int v) { return static_cast<uint8_t>(iclamp(v, 0, 255)); }

// One axis of computeResizeAreaTab for output index d: taps are an optional partial source pixel
// (lo - 1, w_lo), whole pixels lo .. hi-1 (w_mid each), an optional partial pixel (hi, w_hi), in that order.
struct AreaAxis {
  int lo, hi;
  bool has_lo, has_hi;
  float w_lo, w_mid, w_hi;
  TLC_HD int taps() const { return (has_lo ? 1 : 0) + (hi > lo ? hi - lo : 0) + (has_hi ? 1 : 0); }
  TLC_HD int index(int k, float* w) const {
    if (has_lo) {
      if (k == 0) { *w = w_lo; return lo - 1; }
      --k;
    }
    if (k < hi - lo) { *w = w_mid; return lo + k; }
    *w = w_hi;
    return hi;
  }
};

TLC_HD AreaAxis area_axis(int ssize, double scale, int d) {
  const double f1 = dmul(d, scale), f2 = dadd(f1, scale);
  const double cell = scale < ssize - f1 ? scale : ssize - f1;
  int s2 = static_cast<int>(floor(f2));
  s2 = imin(s2, ssize - 1);
  const int s1 = imin(static_cast<int>(ceil(f1)), s2);
  AreaAxis a;
  a.lo = s1;
  a.hi = s2;
  a.has_lo = s1 - f1 > 1e-3;
  a.w_lo = static_cast<float>(ddiv(s1 - f1, cell));
  a.w_mid = static_cast<float>(ddiv(1.0, cell));
  a.has_hi = f2 - s2 > 1e-3;
  const double tail = f2 - s2 < 1.0 ? f2 - s2 : 1.0;
  a.w_hi = static_cast<float>(ddiv(tail < cell ? tail : cell, cell));
  return a;
}

// cv::resize's INTER_LINEAR tap for output index d on one axis: source index and fraction, as floats.
TLC_HD void linear_pos(double scale, int d, int* s, float* f) {
  const float x = static_cast<float>(dadd(dmul(d + 0.5, scale), -0.5));
  *s = static_cast<int>(floorf(x));
  *f = x - static_cast<float>(*s);
}
TLC_HD void linear_weights(float f, int* w0, int* w1) {  // saturate_cast<short>(w * 2048), w <= 1
  *w0 = round_even(fmul(fadd(1.f, -f), 2048.f));
  *w1 = round_even(fmul(f, 2048.f));
}

TLC_HD void area_pixel(const ResizeJob& j, int dx, int dy, uint8_t out[3]) {
  const double sx = ddiv(1.0, ddiv(j.dst_w, j.src_w)), sy = ddiv(1.0, ddiv(j.dst_h, j.src_h));
  const int ix = round_even(sx), iy = round_even(sy);
  const double eps = 2.220446049250313080847e-16;  // DBL_EPSILON
  if (fabs(sx - ix) < eps && fabs(sy - iy) < eps) {
    // Integer factors: exact integer sums.
    int sum[3] = {0, 0, 0};
    for (int r = 0; r < iy; ++r) {
      const uint8_t* p = j.src + (static_cast<int64_t>(dy) * iy + r) * j.pitch + static_cast<int64_t>(dx) * ix * 3;
      for (int k = 0; k < ix; ++k, p += 3) sum[0] += p[0], sum[1] += p[1], sum[2] += p[2];
    }
    const float inv = fdiv(1.f, static_cast<float>(ix * iy));  // OpenCV's float scale = 1.f / area
    for (int c = 0; c < 3; ++c)
      out[c] = (ix == 2 && iy == 2) ? static_cast<uint8_t>((sum[c] + 2) >> 2)
                                    : sat_u8(round_even(fmul(static_cast<float>(sum[c]), inv)));
    return;
  }
  const AreaAxis ax = area_axis(j.src_w, sx, dx), ay = area_axis(j.src_h, sy, dy);
  const int nx = ax.taps(), ny = ay.taps();
  float acc[3] = {0.f, 0.f, 0.f};
  for (int ky = 0; ky < ny; ++ky) {
    float beta;
    const uint8_t* row = j.src + ay.index(ky, &beta) * j.pitch;
    float buf[3] = {0.f, 0.f, 0.f};
    for (int kx = 0; kx < nx; ++kx) {
      float alpha;
      const uint8_t* p = row + ax.index(kx, &alpha) * 3;
      for (int c = 0; c < 3; ++c) buf[c] = fadd(buf[c], fmul(static_cast<float>(p[c]), alpha));
    }
    for (int c = 0; c < 3; ++c) acc[c] = fadd(acc[c], fmul(beta, buf[c]));
  }
  for (int c = 0; c < 3; ++c) out[c] = sat_u8(round_even(acc[c]));
}

TLC_HD void linear_pixel(const ResizeJob& j, int dx, int dy, uint8_t out[3]) {
  const double sx = ddiv(1.0, ddiv(j.dst_w, j.src_w)), sy = ddiv(1.0, ddiv(j.dst_h, j.src_h));
  int x0, y0, a0, a1, b0, b1;
  float fx, fy;
  linear_pos(sx, dx, &x0, &fx);
  // Horizontally a tap outside the image becomes the edge pixel with weight 1 ...
  if (x0 < 0) x0 = 0, fx = 0.f;
  if (x0 >= j.src_w - 1) x0 = j.src_w - 1, fx = 0.f;
  const int x1 = imin(x0 + 1, j.src_w - 1);  // weight 0 when clamped
  linear_weights(fx, &a0, &a1);
  // ... vertically the weights stay and only the row indices are clamped (OpenCV's resizeGeneric_).
  linear_pos(sy, dy, &y0, &fy);
  linear_weights(fy, &b0, &b1);
  const uint8_t* r0 = j.src + iclamp(y0, 0, j.src_h - 1) * j.pitch;
  const uint8_t* r1 = j.src + iclamp(y0 + 1, 0, j.src_h - 1) * j.pitch;
  for (int c = 0; c < 3; ++c) {
    const int h0 = r0[x0 * 3 + c] * a0 + r0[x1 * 3 + c] * a1;
    const int h1 = r1[x0 * 3 + c] * a0 + r1[x1 * 3 + c] * a1;
    out[c] = sat_u8((((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2);
  }
}

}  // namespace rz

// mode: 0 stretch, 1 crop, 2 pad (tlc::ResizeMode). Mirrors resize_to_square's geometry exactly.
TLC_HD ResizeJob make_resize_job(const uint8_t* image, int64_t pitch, int w, int h, int size, int mode) {
  ResizeJob j;
  j.src = image;
  j.pitch = pitch;
  j.src_w = w;
  j.src_h = h;
  j.dst_x = j.dst_y = 0;
  j.dst_w = j.dst_h = size;
  if (mode == 1) {
    const int side = rz::imin(w, h);
    j.src = image + static_cast<int64_t>((h - side) / 2) * pitch + static_cast<int64_t>((w - side) / 2) * 3;
    j.src_w = j.src_h = side;
  } else if (mode == 2) {
    const double f = rz::ddiv(size, rz::imax(w, h));
    j.dst_w = rz::iclamp(rz::round_away(rz::dmul(w, f)), 1, size);
    j.dst_h = rz::iclamp(rz::round_away(rz::dmul(h, f)), 1, size);
    j.dst_x = (size - j.dst_w) / 2;
    j.dst_y = (size - j.dst_h) / 2;
  }
  return j;
}

// Output pixel (x, y) of the job's size x size image.
TLC_HD void resize_pixel(const ResizeJob& j, int size, int x, int y, uint8_t out[3]) {
  (void)size;
  const int dx = x - j.dst_x, dy = y - j.dst_y;
  if (dx < 0 || dy < 0 || dx >= j.dst_w || dy >= j.dst_h) {
    out[0] = out[1] = out[2] = 0;
  } else if (j.src_w == j.dst_w && j.src_h == j.dst_h) {
    const uint8_t* p = j.src + dy * j.pitch + dx * 3;
    out[0] = p[0], out[1] = p[1], out[2] = p[2];
  } else if (j.src_w >= j.dst_w && j.src_h >= j.dst_h) {
    rz::area_pixel(j, dx, dy, out);
  } else {
    rz::linear_pixel(j, dx, dy, out);
  }
}

// Flat index i over n * size * size output pixels (NHWC, RGB): the kernel's whole per-thread work.
TLC_HD void resize_flat(const ResizeJob* jobs, int size, int64_t i, uint8_t* out) {
  const int64_t plane = static_cast<int64_t>(size) * size;
  const int64_t img = i / plane, p = i - img * plane;
  resize_pixel(jobs[img], size, static_cast<int>(p % size), static_cast<int>(p / size), out + i * 3);
}

}  // namespace tlc::cuda
