#pragma once
// The normalize op: uint8 NHWC RGB batch -> float (or bf16/fp16) NCHW/NHWC, per-channel affine, optional
// per-image horizontal flip. One signature, two implementations: normalize_cpu (plain loops, the spec) and
// the CUDA kernel in cuda/normalize.cu, which must match it bit for bit in fp32.
//
// The spec, for output channel c of pixel (n, y, x):
//   src_c = bgr ? 2 - c : c
//   src_x = flip[n] ? W - 1 - x : x
//   out   = fmaf(float(in[n, y, src_x, src_c]), scale[c], shift[c])      (one rounding: fused multiply-add)
// with scale = 1/std and shift = -mean/std computed in float from the mode's mean/std in 0..255 units.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace tlc {

enum class NormalizeMode { minus1to1, imagenet, caffe };
enum class Layout { nchw, nhwc };

struct NormalizeSpec {
  float scale[3] = {1, 1, 1};
  float shift[3] = {0, 0, 0};
  bool bgr = false;

  static NormalizeSpec from_mode(NormalizeMode mode);
};

// "minus1to1" (x/127.5 - 1, the seeds' and Keras MobileNet's convention), "imagenet" (torchvision mean/std
// on RGB), "caffe" (BGR, ImageNet mean subtracted, 0..255 scale, Keras' VGG16 preprocess_input).
NormalizeMode parse_normalize_mode(const std::string& name);  // throws tlc::Error naming the choices
std::string to_string(NormalizeMode mode);

// Reference implementation. src: n*h*w*3 bytes; flip: n bytes or nullptr; dst: n*3*h*w floats.
void normalize_cpu(const uint8_t* src, int64_t n, int64_t h, int64_t w, const NormalizeSpec& spec,
                   const uint8_t* flip, float* dst, Layout layout);

// Dispatcher: a uint8 [N,H,W,3] tensor on CPU or CUDA in, `dtype` out (float32, bfloat16 or float16) in the
// asked layout (nchw: a contiguous [N,3,H,W] tensor; nhwc: [N,3,H,W] sizes with channels-last strides).
// `flip` is an optional uint8/bool [N] tensor. On CPU, reduced precisions are rounded from the fp32 result
// (round to nearest even), which is what the CUDA kernel does too.
at::Tensor normalize(const at::Tensor& images_u8_nhwc, const NormalizeSpec& spec, at::ScalarType dtype,
                     Layout layout, const at::Tensor& flip = at::Tensor());

// The same, written into a given tensor: `out` is [N,3,H,W] float32/bfloat16/float16 on the images' device,
// either contiguous (NCHW) or channels-last (NHWC). Every element of `out` is written. Lets a caller reuse
// one buffer across batches (and lets tests poison it first to catch unwritten elements).
void normalize_out(const at::Tensor& images_u8_nhwc, const NormalizeSpec& spec, const at::Tensor& flip,
                   at::Tensor& out);

// True when this build has the CUDA kernel (TLC_WITH_CUDA).
bool normalize_has_cuda();

}  // namespace tlc
