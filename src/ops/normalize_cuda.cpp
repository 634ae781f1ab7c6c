// Thin glue between torch CUDA tensors and the kernel launcher in cuda/normalize.cu. Built only when Torch
// has CUDA (TLC_WITH_CUDA); the dispatcher in normalize.cpp has already checked shapes, types and layout.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../../cuda/normalize.cuh"
#include "tlc/error.h"
#include "tlc/normalize.h"

namespace tlc {

void normalize_cuda(const at::Tensor& images, const NormalizeSpec& spec, const at::Tensor& flip, Layout layout,
                    at::Tensor& out) {
  c10::cuda::CUDAGuard guard(images.device());
  cuda::NormalizeParams p{};
  for (int c = 0; c < 3; ++c) {
    p.scale[c] = spec.scale[c];
    p.shift[c] = spec.shift[c];
  }
  p.bgr = spec.bgr ? 1 : 0;
  p.nhwc = layout == Layout::nhwc ? 1 : 0;
  const at::ScalarType dt = out.scalar_type();
  const cuda::OutType t = dt == at::kFloat      ? cuda::OutType::f32
                          : dt == at::kBFloat16 ? cuda::OutType::bf16
                                                : cuda::OutType::f16;
  const cudaError_t err = cuda::launch_normalize(images.data_ptr<uint8_t>(), images.size(0), images.size(1),
                                                 images.size(2), p, flip.defined() ? flip.data_ptr<uint8_t>() : nullptr,
                                                 out.data_ptr(), t, c10::cuda::getCurrentCUDAStream().stream());
  if (err != cudaSuccess) throw Error(std::string("normalize kernel launch failed: ") + cudaGetErrorString(err));
}

}  // namespace tlc
