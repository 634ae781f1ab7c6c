#include "resize.h"

#include <opencv2/imgproc.hpp>

#include "../../cuda/resize_tile.h"
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
  // The geometry (crop's centred square, pad's scaled rectangle) is the GPU resize's own (cuda/resize_tile.h),
  // so both paths place and cut images identically.
  cv::Mat target(size, size, CV_8UC3, dst);
  const cuda::ResizeJob j = cuda::make_resize_job(rgb.data, static_cast<int64_t>(rgb.step), rgb.cols, rgb.rows, size,
                                                  static_cast<int>(mode));
  const cv::Mat src(j.src_h, j.src_w, CV_8UC3, const_cast<uint8_t*>(j.src), static_cast<size_t>(j.pitch));
  if (j.dst_w != size || j.dst_h != size) target.setTo(cv::Scalar(0, 0, 0));  // pad: black around
  cv::Mat inner = target(cv::Rect(j.dst_x, j.dst_y, j.dst_w, j.dst_h));
  scale_into(src, inner);
}

}  // namespace tlc
