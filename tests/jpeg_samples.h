#pragma once
// Encoded test images for the GPU decoder's checks: JPEGs the GPU decoder takes (baseline YCbCr in the usual
// chroma samplings and awkward sizes) and files it must leave to the CPU path, each with what it is.
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <turbojpeg.h>

#include <cstdint>
#include <string>
#include <vector>

#include "test_util.h"

namespace tlc_test {

struct EncodedSample {
  std::string name;
  std::vector<uint8_t> bytes;
  bool gpu;  // whether the GPU decoder may take it
};

// A photo-like BGR picture (gradients and shapes): JPEG artefacts stay small, as on photos.
inline cv::Mat smooth_picture(int w, int h, int seed) {
  cv::Mat img(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      img.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>((x * 255) / std::max(1, w - 1)),
                                          static_cast<uint8_t>((y * 255) / std::max(1, h - 1)),
                                          static_cast<uint8_t>((seed * 37 + (x + y) / 3) % 256));
  cv::circle(img, cv::Point(w / 3, h / 2), std::max(1, std::min(w, h) / 4), cv::Scalar(20, 200, 90), -1, cv::LINE_AA);
  cv::GaussianBlur(img, img, cv::Size(5, 5), 0);
  return img;
}

inline std::vector<uint8_t> encode_jpeg(const cv::Mat& img, std::vector<int> params = {}) {
  std::vector<uint8_t> out;
  params.insert(params.end(), {cv::IMWRITE_JPEG_QUALITY, 92});
  cv::imencode(".jpg", img, out, params);
  return out;
}

// Baseline JPEG in a chosen chroma subsampling (TJSAMP_444/422/420), by libjpeg-turbo (OpenCV 4.6 cannot
// choose the subsampling).
inline std::vector<uint8_t> encode_jpeg_sampled(const cv::Mat& bgr, int tj_subsamp) {
  tjhandle h = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  const int rc = tjCompress2(h, bgr.data, bgr.cols, static_cast<int>(bgr.step), bgr.rows, TJPF_BGR, &buf, &len,
                             tj_subsamp, 92, 0);
  std::vector<uint8_t> out;
  if (rc == 0) out.assign(buf, buf + len);
  tjFree(buf);
  tjDestroy(h);
  return out;
}

// An APP1 EXIF block with only the orientation tag, inserted after SOI.
inline std::vector<uint8_t> with_exif_orientation(std::vector<uint8_t> jpeg, uint16_t orientation) {
  const uint8_t app1[] = {0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0,            // marker, length 34
                          'I', 'I', 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00,               // TIFF header, IFD at 8
                          0x01, 0x00,                                                 // one entry
                          0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00,             // 0x0112, SHORT, 1
                          static_cast<uint8_t>(orientation), 0x00, 0x00, 0x00,        // the value
                          0x00, 0x00, 0x00, 0x00};                                    // no next IFD
  jpeg.insert(jpeg.begin() + 2, std::begin(app1), std::end(app1));
  return jpeg;
}

inline std::vector<EncodedSample> gpu_decode_samples() {
  std::vector<EncodedSample> s;
  s.push_back({"500x375 4:2:0", encode_jpeg_sampled(smooth_picture(500, 375, 1), TJSAMP_420), true});
  s.push_back({"333x517 4:4:4", encode_jpeg_sampled(smooth_picture(333, 517, 2), TJSAMP_444), true});
  s.push_back({"161x97 4:2:2", encode_jpeg_sampled(smooth_picture(161, 97, 3), TJSAMP_422), true});
  s.push_back({"40x40 (enlarged)", encode_jpeg(smooth_picture(40, 40, 4)), true});
  s.push_back({"1000x17", encode_jpeg(smooth_picture(1000, 17, 5)), true});
  s.push_back({"progressive", encode_jpeg(smooth_picture(200, 150, 6), {cv::IMWRITE_JPEG_PROGRESSIVE, 1}), false});
  cv::Mat grey;
  cv::cvtColor(smooth_picture(120, 90, 7), grey, cv::COLOR_BGR2GRAY);
  s.push_back({"grayscale", encode_jpeg(grey), false});
  s.push_back({"EXIF-rotated", with_exif_orientation(encode_jpeg(smooth_picture(180, 120, 8)), 6), false});
  std::vector<uint8_t> cut = encode_jpeg(smooth_picture(300, 200, 9));
  cut.resize(cut.size() / 2);
  s.push_back({"truncated", cut, false});
  std::vector<uint8_t> png;
  cv::imencode(".png", smooth_picture(64, 48, 10), png);
  s.push_back({"PNG", png, false});
  s.push_back({"empty", {}, false});
  return s;
}

}  // namespace tlc_test
