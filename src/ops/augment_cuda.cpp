// Thin glue between torch CUDA tensors and the kernel launcher in cuda/augment.cu. Built only when Torch has
// CUDA (TLC_WITH_CUDA); the dispatcher in augment.cpp has already checked shapes and types.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../../cuda/augment.cuh"
#include "tlc/augment.h"
#include "tlc/error.h"

namespace tlc {

void augment_cuda(const at::Tensor& images, const at::Tensor& params, const NormalizeSpec& spec, Layout layout,
                  at::Tensor& out) {
  c10::cuda::CUDAGuard guard(images.device());
  cuda::AugmentAffine a{};
  for (int c = 0; c < 3; ++c) {
    a.scale[c] = spec.scale[c];
    a.shift[c] = spec.shift[c];
  }
  a.bgr = spec.bgr ? 1 : 0;
  a.nhwc = layout == Layout::nhwc ? 1 : 0;
  const at::ScalarType dt = out.scalar_type();
  const cuda::OutType t = dt == at::kFloat ? cuda::OutType::f32 : dt == at::kBFloat16 ? cuda::OutType::bf16 : cuda::OutType::f16;
  const cudaError_t err = cuda::launch_augment(images.data_ptr<uint8_t>(), images.size(0), images.size(1), images.size(2),
                                               params.data_ptr<float>(), a, out.data_ptr(), t,
                                               c10::cuda::getCurrentCUDAStream().stream());
  if (err != cudaSuccess) throw Error(std::string("augment kernel launch failed: ") + cudaGetErrorString(err));
}

}  // namespace tlc
