// Resize kernel: one thread per output pixel (see resize_tile.h). Each thread reads only the source pixels
// its output pixel covers; neighbouring threads read neighbouring, overlapping source runs, so the reads
// are served mostly from L1/L2. Results are bit-identical to the CPU emulation of resize_tile.h.
#include "resize.cuh"

namespace tlc::cuda {
namespace {

constexpr int kThreads = 256;
// Blocks per launch at most; larger batches loop (a grid of 8M threads fills any current GPU).
constexpr int64_t kMaxBlocks = 32768;

__global__ void __launch_bounds__(kThreads) resize_kernel(const ResizeJob* __restrict__ jobs, int64_t total,
                                                          int size, uint8_t* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride)
    resize_flat(jobs, size, i, out);
}

}  // namespace

cudaError_t launch_resize(const ResizeJob* jobs_on_device, int n, int size, uint8_t* out, cudaStream_t stream) {
  if (n < 0 || size < 0) return cudaErrorInvalidValue;
  const int64_t total = static_cast<int64_t>(n) * size * size;
  if (total == 0) return cudaSuccess;
  const int64_t needed = (total + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(needed < kMaxBlocks ? needed : kMaxBlocks);
  resize_kernel<<<blocks, kThreads, 0, stream>>>(jobs_on_device, total, size, out);
  return cudaGetLastError();
}

}  // namespace tlc::cuda
