// Dispatcher for the normalize op: checks the arguments once, then hands the work to the CPU reference
// (in parallel over images) or to the CUDA kernel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "tlc/error.h"
#include "tlc/normalize.h"

namespace tlc {

#ifdef TLC_WITH_CUDA
void normalize_cuda(const at::Tensor& images, const NormalizeSpec& spec, const at::Tensor& flip, Layout layout,
                    at::Tensor& out);  // src/ops/normalize_cuda.cpp
bool normalize_has_cuda() { return true; }
#else
bool normalize_has_cuda() { return false; }
#endif

NormalizeSpec NormalizeSpec::from_mode(NormalizeMode mode) {
  float mean[3], stdv[3];
  NormalizeSpec s;
  switch (mode) {
    case NormalizeMode::minus1to1:
      for (int c = 0; c < 3; ++c) { mean[c] = 127.5f; stdv[c] = 127.5f; }
      break;
    case NormalizeMode::imagenet: {
      const float m[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
      for (int c = 0; c < 3; ++c) { mean[c] = m[c] * 255.0f; stdv[c] = sd[c] * 255.0f; }
      break;
    }
    case NormalizeMode::caffe: {
      // Keras' VGG16 preprocess_input: RGB -> BGR, then subtract the ImageNet mean in BGR order.
      const float m[3] = {103.939f, 116.779f, 123.68f};
      for (int c = 0; c < 3; ++c) { mean[c] = m[c]; stdv[c] = 1.0f; }
      s.bgr = true;
      break;
    }
  }
  for (int c = 0; c < 3; ++c) {
    s.scale[c] = 1.0f / stdv[c];
    s.shift[c] = -mean[c] / stdv[c];
  }
  return s;
}

NormalizeMode parse_normalize_mode(const std::string& name) {
  if (name == "minus1to1") return NormalizeMode::minus1to1;
  if (name == "imagenet") return NormalizeMode::imagenet;
  if (name == "caffe") return NormalizeMode::caffe;
  throw Error("unknown normalization '" + name + "'; choose minus1to1, imagenet or caffe");
}

std::string to_string(NormalizeMode mode) {
  switch (mode) {
    case NormalizeMode::minus1to1: return "minus1to1";
    case NormalizeMode::imagenet: return "imagenet";
    case NormalizeMode::caffe: return "caffe";
  }
  return "?";
}

namespace {

void check_images(const at::Tensor& images) {
  if (images.dim() != 4 || images.size(3) != 3)
    throw Error("normalize expects a uint8 [N,H,W,3] batch, got sizes " + c10::str(images.sizes()));
  if (images.scalar_type() != at::kByte)
    throw Error(std::string("normalize expects uint8 pixels, got ") + c10::toString(images.scalar_type()));
}

void check_dtype(at::ScalarType dtype) {
  if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf)
    throw Error(std::string("normalize writes float32, bfloat16 or float16, not ") + c10::toString(dtype));
}

at::Tensor flip_mask(const at::Tensor& flip, const at::Tensor& images) {
  if (!flip.defined()) return flip;
  const int64_t n = images.size(0);
  if (flip.dim() != 1 || flip.size(0) != n)
    throw Error("normalize: flip mask must have one entry per image (" + std::to_string(n) + "), got sizes " +
                c10::str(flip.sizes()));
  return flip.to(images.device(), at::kByte).contiguous();
}

}  // namespace

at::Tensor normalize(const at::Tensor& images, const NormalizeSpec& spec, at::ScalarType dtype, Layout layout,
                     const at::Tensor& flip) {
  check_images(images);
  check_dtype(dtype);
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2);
  const auto opts = images.options().dtype(dtype).memory_format(
      layout == Layout::nchw ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast);
  at::Tensor out = at::empty({n, 3, h, w}, opts);
  normalize_out(images, spec, flip, out);
  return out;
}

void normalize_out(const at::Tensor& images, const NormalizeSpec& spec, const at::Tensor& flip, at::Tensor& out) {
  check_images(images);
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2);
  if (out.dim() != 4 || out.size(0) != n || out.size(1) != 3 || out.size(2) != h || out.size(3) != w)
    throw Error("normalize: output must be [" + std::to_string(n) + ",3," + std::to_string(h) + "," +
                std::to_string(w) + "], got " + c10::str(out.sizes()));
  check_dtype(out.scalar_type());
  if (out.device() != images.device())
    throw Error("normalize: output on " + out.device().str() + " but images on " + images.device().str());
  Layout layout;
  if (out.is_contiguous())
    layout = Layout::nchw;
  else if (out.is_contiguous(at::MemoryFormat::ChannelsLast))
    layout = Layout::nhwc;
  else
    throw Error("normalize: output must be contiguous or channels-last");
  const at::Tensor fl = flip_mask(flip, images);
  if (images.is_cuda()) {
#ifdef TLC_WITH_CUDA
    normalize_cuda(images.contiguous(), spec, fl, layout, out);
    return;
#else
    throw Error("this tlc was built without CUDA; build with -DTLC_WITH_CUDA=ON or use --device cpu");
#endif
  }
  const at::Tensor src = images.contiguous();
  // The reference computes float32; reduced precisions are rounded from it by copy_ (nearest even).
  at::Tensor dst = out.scalar_type() == at::kFloat ? out : at::empty_like(out, out.options().dtype(at::kFloat));
  const uint8_t* s = src.data_ptr<uint8_t>();
  const uint8_t* f = fl.defined() ? fl.data_ptr<uint8_t>() : nullptr;
  float* d = dst.data_ptr<float>();
  const int64_t img = h * w * 3;
  at::parallel_for(0, n, 1, [&](int64_t b0, int64_t b1) {
    normalize_cpu(s + b0 * img, b1 - b0, h, w, spec, f ? f + b0 : nullptr, d + b0 * img, layout);
  });
  if (!dst.is_same(out)) out.copy_(dst);
}

}  // namespace tlc
