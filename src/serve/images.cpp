#include "images.h"

#include <opencv2/core.hpp>

#include "../data/resize.h"  // resize_to_square: the last step of every decode
#include "http_error.h"

namespace tlc::serve {

at::Tensor decode_each(const std::vector<std::string_view>& files, const DecodeOptions& opt,
                       std::vector<std::string>& errors) {
  const auto n = static_cast<int64_t>(files.size());
  at::Tensor out = at::empty({n, opt.size, opt.size, 3}, at::kByte);
  const size_t stride = static_cast<size_t>(opt.size) * static_cast<size_t>(opt.size) * 3;
  errors.assign(files.size(), std::string());
  for (size_t i = 0; i < files.size(); ++i) {
    const DecodeStatus st = decode_resized(reinterpret_cast<const uint8_t*>(files[i].data()), files[i].size(),
                                           out.data_ptr<uint8_t>() + i * stride, opt);
    if (!st.ok) errors[i] = st.error.empty() ? "not a decodable image" : st.error;
  }
  return out;
}

at::Tensor decode_images(const std::vector<std::string_view>& files, const std::vector<std::string>& names,
                         const DecodeOptions& opt) {
  std::vector<std::string> errors;
  at::Tensor out = decode_each(files, opt, errors);
  std::string all;
  size_t bad = 0;
  for (size_t i = 0; i < errors.size(); ++i) {
    if (errors[i].empty()) continue;
    if (++bad <= 5) all += (all.empty() ? "" : "; ") + names.at(i) + ": " + errors[i];
  }
  if (bad > 5) all += "; and " + std::to_string(bad - 5) + " more";
  if (bad > 0) throw HttpError(400, "cannot decode " + all);
  return out;
}

at::Tensor resize_pixels(const at::Tensor& pixels, const DecodeOptions& opt) {
  const int64_t n = pixels.size(0), h = pixels.size(1), w = pixels.size(2);
  if (h == opt.size && w == opt.size) return pixels.contiguous();
  if (h * w > opt.max_pixels)
    throw HttpError(400, "input PIXELS: " + std::to_string(w) + "x" + std::to_string(h) + " images are more than --max-pixels " +
                             std::to_string(opt.max_pixels));
  const at::Tensor src = pixels.contiguous();
  at::Tensor out = at::empty({n, opt.size, opt.size, 3}, at::kByte);
  const size_t in_stride = static_cast<size_t>(h * w * 3), out_stride = static_cast<size_t>(opt.size) * opt.size * 3;
  for (int64_t i = 0; i < n; ++i) {
    const cv::Mat rgb(static_cast<int>(h), static_cast<int>(w), CV_8UC3, src.data_ptr<uint8_t>() + i * in_stride);
    resize_to_square(rgb, opt.size, opt.resize, out.data_ptr<uint8_t>() + i * out_stride);
  }
  return out;
}

}  // namespace tlc::serve
