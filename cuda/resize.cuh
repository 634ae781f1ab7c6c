#pragma once
// The CUDA side of the batch resize that follows nvJPEG decoding: each decoded image (full size, RGB
// interleaved, on the device) to size x size by resize_to_square's rule (see resize_tile.h for the pixel
// arithmetic, and src/data/resize.cpp for the CPU path it reproduces).
#include <cuda_runtime.h>

#include <cstdint>

#include "resize_tile.h"

namespace tlc::cuda {

// jobs_on_device: device pointer to n jobs (make_resize_job; their src pointers are device pointers).
// out: device pointer to n*size*size*3 bytes, written in full (NHWC, RGB; zeros outside each job's
// rectangle). Returns the launch error, if any.
cudaError_t launch_resize(const ResizeJob* jobs_on_device, int n, int size, uint8_t* out, cudaStream_t stream);

}  // namespace tlc::cuda
