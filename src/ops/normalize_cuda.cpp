// Thin glue between torch CUDA tensors and the kernel launcher in cuda/normalize.cu. Built only when Torch
// has CUDA (TLC_WITH_CUDA); the dispatcher in normalize.cpp has already checked shapes and types.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../../cuda/normalize.cuh"
#include "tlc/error.h"
#include "tlc/normalize.h"

namespace tlc {

at::Tensor normalize_cuda(const at::Tensor& images, const NormalizeSpec& spec, at::ScalarType dtype,
                          Layout layout, const at::Tensor& flip) {
  c10::cuda::CUDAGuard guard(images.device());
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2);
  auto opts = images.options().dtype(dtype);
  at::Tensor out = layout == Layout::nchw ? at::empty({n, 3, h, w}, opts)
                                          : at::empty({n, 3, h, w}, opts.memory_format(at::MemoryFormat::ChannelsLast));
  cuda::NormalizeParams p{};
  for (int c = 0; c < 3; ++c) { p.scale[c] = spec.scale[c]; p.shift[c] = spec.shift[c]; }
  p.bgr = spec.bgr ? 1 : 0;
  p.nhwc = layout == Layout::nhwc ? 1 : 0;
  cuda::OutType t = dtype == at::kFloat ? cuda::OutType::f32 : dtype == at::kBFloat16 ? cuda::OutType::bf16
                                                                                      : cuda::OutType::f16;
  cudaError_t err = cuda::launch_normalize(images.data_ptr<uint8_t>(), n, h, w, p,
                                           flip.defined() ? flip.data_ptr<uint8_t>() : nullptr, out.data_ptr(), t,
                                           c10::cuda::getCurrentCUDAStream().stream());
  if (err != cudaSuccess) throw Error(std::string("normalize kernel launch failed: ") + cudaGetErrorString(err));
  return out;
}

}  // namespace tlc
