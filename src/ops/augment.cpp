// Dispatcher for the augmentation op: checks the arguments once, then hands the work to the CPU reference (in
// parallel over images) or to the CUDA kernel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "tlc/augment.h"
#include "tlc/error.h"

namespace tlc {

#ifdef TLC_WITH_CUDA
void augment_cuda(const at::Tensor& images, const at::Tensor& params, const NormalizeSpec& spec, Layout layout,
                  at::Tensor& out);  // src/ops/augment_cuda.cpp
bool augment_has_cuda() { return true; }
#else
bool augment_has_cuda() { return false; }
#endif

at::Tensor augment(const at::Tensor& images, const at::Tensor& params, const NormalizeSpec& spec, at::ScalarType dtype,
                   Layout layout) {
  if (images.dim() != 4 || images.size(3) != 3 || images.scalar_type() != at::kByte)
    throw Error("augment expects a uint8 [N,H,W,3] batch, got " + std::string(c10::toString(images.scalar_type())) +
                " sizes " + c10::str(images.sizes()));
  if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf)
    throw Error(std::string("augment writes float32, bfloat16 or float16, not ") + c10::toString(dtype));
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2);
  if (params.dim() != 2 || params.size(0) != n || params.size(1) != kViewParamFloats)
    throw Error("augment: params must be [" + std::to_string(n) + "," + std::to_string(kViewParamFloats) +
                "] (one view per image), got " + c10::str(params.sizes()));
  const auto opts = images.options().dtype(dtype).memory_format(
      layout == Layout::nchw ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast);
  at::Tensor out = at::empty({n, 3, h, w}, opts);
  if (images.is_cuda()) {
#ifdef TLC_WITH_CUDA
    augment_cuda(images.contiguous(), params.to(images.device(), at::kFloat).contiguous(), spec, layout, out);
    return out;
#else
    throw Error("this tlc was built without CUDA; build with -DTLC_WITH_CUDA=ON or use --device cpu");
#endif
  }
  const at::Tensor src = images.contiguous();
  const at::Tensor prm = params.to(at::kCPU, at::kFloat).contiguous();
  at::Tensor dst = dtype == at::kFloat ? out : at::empty_like(out, out.options().dtype(at::kFloat));
  const uint8_t* s = src.data_ptr<uint8_t>();
  const float* p = prm.data_ptr<float>();
  float* d = dst.data_ptr<float>();
  const int64_t img = h * w * 3;
  at::parallel_for(0, n, 1, [&](int64_t b0, int64_t b1) {
    augment_cpu(s + b0 * img, b1 - b0, h, w, p + b0 * kViewParamFloats, spec, d + b0 * img, layout);
  });
  if (!dst.is_same(out)) out.copy_(dst);
  return out;
}

}  // namespace tlc
