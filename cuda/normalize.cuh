#pragma once
// The CUDA side of the normalize op (see include/tlc/normalize.h for the spec it must match). Nothing else
// in tlc touches the CUDA runtime API: src/ops/normalize_cuda.cpp hands torch tensors to this launcher.
#include <cuda_runtime.h>

#include <cstdint>

#include "normalize_tile.h"

namespace tlc::cuda {

enum class OutType : int { f32 = 0, bf16 = 1, f16 = 2 };

// Pixels per tile (one block's share of a launch). 2,048 keeps a float32 block's shared memory near 31 KB,
// under the 48 KB a block gets without opting in, with room for 7 blocks on a Hopper multiprocessor.
constexpr int64_t kTilePixels = 2048;
constexpr int kThreads = 256;

// src: device pointer to n*h*w*3 bytes; flip: device pointer to n bytes or nullptr; dst: device pointer to
// n*3*h*w elements of `type` (NCHW, or NHWC when p.nhwc). Any alignment. Returns the launch error, if any.
cudaError_t launch_normalize(const uint8_t* src, int64_t n, int64_t h, int64_t w, const NormalizeParams& p,
                             const uint8_t* flip, void* dst, OutType type, cudaStream_t stream);

}  // namespace tlc::cuda
