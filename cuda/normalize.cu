// Normalize kernel: one thread per output pixel, three channels each. Results are bit-identical to
// normalize_cpu in fp32 (both use one fused multiply-add per value); bf16/fp16 are rounded to nearest even
// from that fp32 value, as torch's .to() does on the CPU path.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "normalize.cuh"

namespace tlc::cuda {
namespace {

template <typename T>
__device__ __forceinline__ T convert(float v);
template <>
__device__ __forceinline__ float convert<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 convert<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half convert<__half>(float v) { return __float2half_rn(v); }

template <typename T>
__global__ void normalize_kernel(const uint8_t* __restrict__ src, int64_t n, int64_t h, int64_t w,
                                 NormalizeParams p, const uint8_t* __restrict__ flip, T* __restrict__ dst) {
  const int64_t total = n * h * w;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t x = i % w;
    const int64_t y = (i / w) % h;
    const int64_t b = i / (w * h);
    const int64_t sx = (flip != nullptr && flip[b]) ? w - 1 - x : x;
    const uint8_t* px = src + ((b * h + y) * w + sx) * 3;
#pragma unroll
    for (int c = 0; c < 3; ++c) {
      const int sc = p.bgr ? 2 - c : c;
      const float v = __fmaf_rn(static_cast<float>(px[sc]), p.scale[c], p.shift[c]);
      const int64_t o = p.nhwc ? i * 3 + c : ((b * 3 + c) * h + y) * w + x;
      dst[o] = convert<T>(v);
    }
  }
}

template <typename T>
cudaError_t launch_typed(const uint8_t* src, int64_t n, int64_t h, int64_t w, const NormalizeParams& p,
                         const uint8_t* flip, T* dst, cudaStream_t stream) {
  const int64_t total = n * h * w;
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t want = (total + threads - 1) / threads;
  const int blocks = static_cast<int>(want < 65535 * 8 ? want : 65535 * 8);
  normalize_kernel<T><<<blocks, threads, 0, stream>>>(src, n, h, w, p, flip, dst);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_normalize(const uint8_t* src, int64_t n, int64_t h, int64_t w, const NormalizeParams& p,
                             const uint8_t* flip, void* dst, OutType type, cudaStream_t stream) {
  switch (type) {
    case OutType::f32: return launch_typed(src, n, h, w, p, flip, static_cast<float*>(dst), stream);
    case OutType::bf16: return launch_typed(src, n, h, w, p, flip, static_cast<__nv_bfloat16*>(dst), stream);
    case OutType::f16: return launch_typed(src, n, h, w, p, flip, static_cast<__half*>(dst), stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace tlc::cuda
