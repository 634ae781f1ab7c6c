#pragma once
// The augmentation op: random views of a uint8 NHWC RGB batch, written as the backbone's normalized input.
// One fused pass per output pixel: a projective map (flip, perspective warp, rotation, zoom, random-resized
// crop and translation composed into one 3x3 matrix) samples the source bilinearly with reflected borders,
// then brightness, contrast and saturation, then the normalize op's per-channel affine. One signature, two
// implementations: augment_cpu (plain loops, the spec) and the CUDA kernel in cuda/augment.cu.
//
// The spec, for output pixel (n, y, x), with M = the view's matrix (output pixel -> source pixel):
//   (u, v, w) = M * (x, y, 1);  sx = u / w, sy = v / w
//   x0 = floor(sx), y0 = floor(sy), fx = sx - x0, fy = sy - y0
//   taps (x0|x0+1, y0|y0+1), each index reflected into range as OpenCV's BORDER_REFLECT (-1 -> 0, W -> W-1)
//   s_c = (1-fy) * ((1-fx) * p00 + fx * p01) + fy * ((1-fx) * p10 + fx * p11)      (0..255 units)
//   colour:  s = 127.5 + contrast * (s * brightness - 127.5)   (contrast around mid-grey, as fastai's lighting)
//            when saturation != 1: g = 0.299 s_R + 0.587 s_G + 0.114 s_B;  s = g + saturation * (s - g)
//            clamp to [0, 255]
//   out = fmaf(s, scale[c], shift[c])  (the normalize op's affine; bgr swaps the channel order)
// Every product and sum is rounded on its own (no contraction), so the CUDA kernel matches bit for bit in fp32,
// and the identity view gives exactly the normalize op's output.
// The parameters of each view are drawn on the CPU (draw_view) from (seed, image key, view), so a view is the
// same on every device, in every batch composition, and after a resume.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tlc/normalize.h"

namespace tlc {

// What to draw, with explicit units. A zero (or false) leaves the transform out.
struct AugmentSpec {
  bool flip_h = false, flip_v = false;  // each with probability 0.5
  double rotate = 0;      // degrees: uniform in [-rotate, rotate]
  double zoom = 1;        // factor: uniform in [1, zoom] (zoom > 1 magnifies) or [zoom, 1] (zoom < 1 shrinks)
  double translate = 0;   // fraction of the width/height: uniform in [-translate, translate] on each axis
  double crop = 0;        // random-resized crop: area fraction uniform in [crop, 1], aspect log-uniform in [3/4, 4/3]
  double warp = 0;        // perspective: keystone magnitudes uniform in [-warp, warp] on each axis (fastai's warp), <= 0.45
  double brightness = 0;  // factor uniform in [1 - b, 1 + b]
  double contrast = 0;    // factor uniform in [1 - c, 1 + c], around mid-grey (as fastai's lighting)
  double saturation = 0;  // factor uniform in [1 - s, 1 + s]
  double p = 1;           // probability that each transform other than flips applies to a view

  bool none() const;
  // Only horizontal flips: two possible views, which training caches exactly (--augment flip).
  bool flip_only() const;
  bool operator==(const AugmentSpec& o) const;
};

// "none"; a preset: "flip", "light" (flip, rotate 10, zoom 1.1, translate 0.05), "keras" (the TF tutorial's
// RandomFlip + RandomRotation(0.2): flip, rotate 72), "fastai" (aug_transforms' defaults: flip, rotate 10,
// zoom 1.1, lighting 0.2, warp 0.2, p 0.75), "timm" (crop 0.08, flip, colour jitter 0.4); or a list of
// transforms and presets, later items overriding earlier ones (a preset other than flip resets what came before): "flip,rotate=10,zoom=1.1,lighting=0.2".
// Names: flip (=h, v or hv), vflip, rotate, zoom, translate, crop, warp, brightness, contrast, saturation,
// lighting (brightness and contrast), p. Throws tlc::Error naming the bad item and the choices.
AugmentSpec parse_augment(const std::string& text);
// The canonical text of a spec ("none", "flip", or "flip,rotate=10,..." in a fixed order); parses back to
// the same spec. What config.json and the model file store.
std::string to_string(const AugmentSpec& spec);
// A sentence for the log: "random horizontal flips, rotations of up to 10 degrees, ...".
std::string describe(const AugmentSpec& spec);

// One view's parameters: the 3x3 output->source matrix (row major) and the colour factors.
struct ViewParams {
  float m[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  float brightness = 1, contrast = 1, saturation = 1;
};
constexpr int kViewParamFloats = 12;  // the layout of a params tensor row: m[9], brightness, contrast, saturation

// The plain view (identity map, no colour change).
ViewParams identity_view();
// Draws a view of an h x w image from (seed, key, view): the same numbers on every call.
ViewParams draw_view(const AugmentSpec& spec, int64_t h, int64_t w, uint64_t seed, uint64_t key, uint64_t view);
// A float32 [N, 12] CPU tensor of views, one row per image.
at::Tensor view_tensor(const std::vector<ViewParams>& views);
// A key for an image from its pixels (uint8 [H,W,3], CPU): test-time views that do not depend on the batch.
uint64_t pixel_key(const at::Tensor& image_u8_hwc);
// The keys of a batch's images (uint8 [N,H,W,3] on any device; one host copy).
std::vector<uint64_t> pixel_keys(const at::Tensor& images_u8_nhwc);
// The view tensor (view_tensor) of a batch of h x w images: row r is draw_view(spec, h, w, seed, keys[r],
// view_id[r]), or the identity view where view_id[r] < 0. What training and --tta both draw.
at::Tensor view_params(const AugmentSpec& spec, int64_t h, int64_t w, uint64_t seed, const std::vector<uint64_t>& keys,
                       const std::vector<int64_t>& view_id);
// The seed of test-time views (their key is the image's pixels).
constexpr uint64_t kTtaSeed = 0;

// Reference implementation. src: n*h*w*3 bytes; params: n*12 floats; dst: n*3*h*w floats (same size out).
void augment_cpu(const uint8_t* src, int64_t n, int64_t h, int64_t w, const float* params, const NormalizeSpec& spec,
                 float* dst, Layout layout);

// Dispatcher: a uint8 [N,H,W,3] batch on CPU or CUDA and float32 [N,12] params (view_tensor; any device) in,
// `dtype` (float32, bfloat16 or float16) [N,3,H,W] out in the asked layout, on the images' device.
at::Tensor augment(const at::Tensor& images_u8_nhwc, const at::Tensor& params, const NormalizeSpec& spec,
                   at::ScalarType dtype, Layout layout);

// True when this build has the CUDA kernel (TLC_WITH_CUDA).
bool augment_has_cuda();

}  // namespace tlc
