#include "resize.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "tlc/error.h"

namespace tlc {
namespace {

// Area averaging when shrinking (no aliasing), bilinear when enlarging; `dst` is preallocated.
void scale_into(const cv::Mat& src, cv::Mat& dst) {
  if (src.cols == dst.cols && src.rows == dst.rows) {
    src.copyTo(dst);
    return;
  }
  const int interp = (src.cols >= dst.cols && src.rows >= dst.rows) ? cv::INTER_AREA : cv::INTER_LINEAR;
  // dst's size and type already match, so cv::resize writes into its memory (a view of the caller's buffer).
  uchar* const before = dst.data;
  cv::Mat out = dst;
  cv::resize(src, out, dst.size(), 0, 0, interp);
  if (out.data != before) out.copyTo(dst);
}

}  // namespace

ResizeMode parse_resize_mode(const std::string& name) {
  if (name == "stretch") return ResizeMode::stretch;
  if (name == "crop") return ResizeMode::crop;
  if (name == "pad") return ResizeMode::pad;
  throw Error("unknown resize mode '" + name + "'; choose stretch, crop or pad");
}

std::string to_string(ResizeMode mode) {
  switch (mode) {
    case ResizeMode::stretch: return "stretch";
    case ResizeMode::crop: return "crop";
    case ResizeMode::pad: return "pad";
  }
  return "stretch";
}

void resize_to_square(const cv::Mat& rgb, int size, ResizeMode mode, uint8_t* dst) {
  cv::Mat target(size, size, CV_8UC3, dst);
  const int w = rgb.cols, h = rgb.rows;
  switch (mode) {
    case ResizeMode::stretch:
      scale_into(rgb, target);
      break;
    case ResizeMode::crop: {
      const int side = std::min(w, h);
      scale_into(rgb(cv::Rect((w - side) / 2, (h - side) / 2, side, side)), target);
      break;
    }
    case ResizeMode::pad: {
      // The longer side becomes `size`; the shorter keeps the aspect ratio (at least one pixel).
      const double f = static_cast<double>(size) / std::max(w, h);
      const int nw = std::clamp(static_cast<int>(std::lround(w * f)), 1, size);
      const int nh = std::clamp(static_cast<int>(std::lround(h * f)), 1, size);
      target.setTo(cv::Scalar(0, 0, 0));
      cv::Mat inner = target(cv::Rect((size - nw) / 2, (size - nh) / 2, nw, nh));
      scale_into(rgb, inner);
      break;
    }
  }
}

}  // namespace tlc
