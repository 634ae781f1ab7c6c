// Normalize kernel: one block per tile (see normalize_tile.h for the three phases and why). Results are
// bit-identical to normalize_cpu in fp32 (both use one fused multiply-add per value); bf16/fp16 are rounded
// to nearest even from that fp32 value, as torch's .to() does on the CPU path.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>

#include "normalize.cuh"

namespace tlc::cuda {
namespace {

constexpr int kMaxDevices = 64;

struct DeviceOps {
  static __device__ __forceinline__ float fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
  template <typename T>
  static __device__ __forceinline__ T cvt(float v);
};
template <>
__device__ __forceinline__ float DeviceOps::cvt<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 DeviceOps::cvt<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half DeviceOps::cvt<__half>(float v) { return __float2half_rn(v); }

// At most 32 registers (8 blocks of 256 threads per multiprocessor; ptxas: no spills), so that registers
// do not limit occupancy below what shared memory allows (7 float32 blocks, 8 of bf16/fp16).
template <typename T>
__global__ void __launch_bounds__(kThreads, 8) normalize_kernel(const uint8_t* __restrict__ src, Geometry g,
                                                             NormalizeParams p, const uint8_t* __restrict__ flip,
                                                             T* __restrict__ dst) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  for (int64_t ti = blockIdx.x; ti < g.tiles(); ti += gridDim.x) {
    const Tile t = tile_at(g, ti, flip);
    const TileView<T> v = make_view<T>(g, t, p, src, dst, smem, g.tile_px);
    load_phase(v, tid, nt);
    __syncthreads();
    compute_phase<DeviceOps>(v, t, p, tid, nt);
    __syncthreads();
    store_phase(v, tid, nt);
    __syncthreads();  // the next tile reuses the shared memory
  }
}

// The current device's multiprocessor count, looked up once per device (a launch should cost microseconds).
cudaError_t multiprocessors(int* count) {
  static std::atomic<int> cache[kMaxDevices];
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  if (device >= 0 && device < kMaxDevices && (*count = cache[device].load(std::memory_order_relaxed)) > 0)
    return cudaSuccess;
  err = cudaDeviceGetAttribute(count, cudaDevAttrMultiProcessorCount, device);
  if (err == cudaSuccess && device >= 0 && device < kMaxDevices) cache[device].store(*count, std::memory_order_relaxed);
  return err;
}

template <typename T>
cudaError_t launch_typed(const uint8_t* src, int64_t n, int64_t h, int64_t w, const NormalizeParams& p,
                         const uint8_t* flip, T* dst, cudaStream_t stream) {
  if (n == 0 || h == 0 || w == 0) return cudaSuccess;
  const Geometry g = make_geometry(n, h, w, kTilePixels);
  int sms = 0;
  const cudaError_t err = multiprocessors(&sms);
  if (err != cudaSuccess) return err;
  // Enough blocks to fill every multiprocessor several times over; larger batches loop over their tiles.
  const int64_t cap = static_cast<int64_t>(sms) * 16;
  const int blocks = static_cast<int>(g.tiles() < cap ? g.tiles() : cap);
  const size_t shared = static_cast<size_t>(shared_bytes(kTilePixels, sizeof(T)));
  normalize_kernel<T><<<blocks, kThreads, shared, stream>>>(src, g, p, flip, dst);
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
