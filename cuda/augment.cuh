#pragma once
// The CUDA side of the augmentation op (see include/tlc/augment.h for the spec it must match bit for bit in
// fp32). src/ops/augment_cuda.cpp hands torch tensors to this launcher.
#include <cuda_runtime.h>

#include <cstdint>

#include "normalize.cuh"

namespace tlc::cuda {

struct AugmentAffine {
  float scale[3], shift[3];
  int bgr, nhwc;
};

// src: n*h*w*3 bytes; params: n*12 floats (device); dst: n*3*h*w elements of `type`. Returns the launch error.
cudaError_t launch_augment(const uint8_t* src, int64_t n, int64_t h, int64_t w, const float* params,
                           const AugmentAffine& a, void* dst, OutType type, cudaStream_t stream);

}  // namespace tlc::cuda
