// Augmentation kernel: one thread per output pixel (the source reads are a gather, so tiles would not help),
// all three channels. Every operation is an explicitly rounded intrinsic in the order augment_cpu computes
// it, so fp32 results match the CPU reference bit for bit; bf16/fp16 are rounded from that fp32 value.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "augment.cuh"

namespace tlc::cuda {
namespace {

__device__ __forceinline__ int64_t reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

template <typename T>
__device__ __forceinline__ T cvt(float v);
template <>
__device__ __forceinline__ float cvt<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half cvt<__half>(float v) { return __float2half_rn(v); }

// a*x + b*y + c, rounded as the CPU's (a*x + b*y) + c without contraction.
__device__ __forceinline__ float dot3(float a, float x, float b, float y, float c) {
  return __fadd_rn(__fadd_rn(__fmul_rn(a, x), __fmul_rn(b, y)), c);
}
__device__ __forceinline__ float lerp(float p, float q, float t) {  // (1 - t) * p + t * q
  return __fadd_rn(__fmul_rn(__fsub_rn(1.0f, t), p), __fmul_rn(t, q));
}

template <typename T>
__global__ void augment_kernel(const uint8_t* __restrict__ src, int64_t n, int64_t h, int64_t w,
                               const float* __restrict__ params, AugmentAffine a, T* __restrict__ dst) {
  const int64_t total = n * h * w;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / (h * w), y = (i / w) % h, x = i % w;
    const float* m = params + b * 12;
    const float fx = static_cast<float>(x), fy = static_cast<float>(y);
    const float u = dot3(m[0], fx, m[1], fy, m[2]);
    const float v = dot3(m[3], fx, m[4], fy, m[5]);
    const float q = dot3(m[6], fx, m[7], fy, m[8]);
    const float sx = __fdiv_rn(u, q), sy = __fdiv_rn(v, q);
    const float x0f = floorf(sx), y0f = floorf(sy);
    const float ax = __fsub_rn(sx, x0f), ay = __fsub_rn(sy, y0f);
    const int64_t x0 = reflect(static_cast<int64_t>(x0f), w), x1 = reflect(static_cast<int64_t>(x0f) + 1, w);
    const int64_t y0 = reflect(static_cast<int64_t>(y0f), h), y1 = reflect(static_cast<int64_t>(y0f) + 1, h);
    const uint8_t* img = src + b * h * w * 3;
    const uint8_t* p00 = img + (y0 * w + x0) * 3;
    const uint8_t* p01 = img + (y0 * w + x1) * 3;
    const uint8_t* p10 = img + (y1 * w + x0) * 3;
    const uint8_t* p11 = img + (y1 * w + x1) * 3;
    float r[3];
    for (int c = 0; c < 3; ++c) {
      const float top = lerp(static_cast<float>(p00[c]), static_cast<float>(p01[c]), ax);
      const float bot = lerp(static_cast<float>(p10[c]), static_cast<float>(p11[c]), ax);
      r[c] = lerp(top, bot, ay);
      r[c] = __fadd_rn(127.5f, __fmul_rn(m[10], __fsub_rn(__fmul_rn(r[c], m[9]), 127.5f)));
    }
    if (m[11] != 1.0f) {
      const float g = __fadd_rn(__fadd_rn(__fmul_rn(0.299f, r[0]), __fmul_rn(0.587f, r[1])), __fmul_rn(0.114f, r[2]));
      for (int c = 0; c < 3; ++c) r[c] = __fadd_rn(g, __fmul_rn(m[11], __fsub_rn(r[c], g)));
    }
    for (int c = 0; c < 3; ++c) r[c] = fminf(255.0f, fmaxf(0.0f, r[c]));
    for (int c = 0; c < 3; ++c) {
      const int sc = a.bgr ? 2 - c : c;
      const float out = __fmaf_rn(r[sc], a.scale[c], a.shift[c]);
      const int64_t o = a.nhwc ? ((b * h + y) * w + x) * 3 + c : ((b * 3 + c) * h + y) * w + x;
      dst[o] = cvt<T>(out);
    }
  }
}

template <typename T>
cudaError_t launch_typed(const uint8_t* src, int64_t n, int64_t h, int64_t w, const float* params,
                         const AugmentAffine& a, T* dst, cudaStream_t stream) {
  const int64_t total = n * h * w;
  if (total == 0) return cudaSuccess;
  constexpr int kThreadsPerBlock = 256;
  const int64_t want = (total + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const int blocks = static_cast<int>(want < 65535 ? want : 65535);
  augment_kernel<T><<<blocks, kThreadsPerBlock, 0, stream>>>(src, n, h, w, params, a, dst);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_augment(const uint8_t* src, int64_t n, int64_t h, int64_t w, const float* params,
                           const AugmentAffine& a, void* dst, OutType type, cudaStream_t stream) {
  switch (type) {
    case OutType::f32: return launch_typed(src, n, h, w, params, a, static_cast<float*>(dst), stream);
    case OutType::bf16: return launch_typed(src, n, h, w, params, a, static_cast<__nv_bfloat16*>(dst), stream);
    case OutType::f16: return launch_typed(src, n, h, w, params, a, static_cast<__half*>(dst), stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace tlc::cuda
