#pragma once
// Request bytes to the model's input: encoded files decoded and resized exactly as `tlc predict` decodes
// files (tlc/image_io.h, with the model's size and resize mode: predict_decode_options), and raw RGB pixels
// resized the same way. A bad image is an HttpError(400) naming which one and why; it fails only the request
// that carried it, since decoding happens before anything is queued.
#include <ATen/ATen.h>

#include <string>
#include <string_view>
#include <vector>

#include "tlc/image_io.h"

namespace tlc::serve {

// uint8 [N,S,S,3]; errors[i] is empty for an image that decoded, else why it did not (its row is then junk).
at::Tensor decode_each(const std::vector<std::string_view>& files, const DecodeOptions& opt,
                       std::vector<std::string>& errors);

// uint8 [N,S,S,3], or HttpError(400) listing every image that did not decode; `names[i]` (e.g. "IMAGE[0]", a multipart file name) is how errors name element i.
at::Tensor decode_images(const std::vector<std::string_view>& files, const std::vector<std::string>& names,
                         const DecodeOptions& opt);

// uint8 [N,H,W,3] RGB -> uint8 [N,S,S,3] by opt.resize (unchanged when already S x S).
at::Tensor resize_pixels(const at::Tensor& pixels, const DecodeOptions& opt);

}  // namespace tlc::serve
