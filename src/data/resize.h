#pragma once
// The last step of decoding: an RGB image of any size to size x size, by the chosen ResizeMode.
#include <opencv2/core.hpp>

#include "tlc/image_io.h"

namespace tlc {

// Writes size*size*3 bytes (RGB, row-major HWC) to `dst`.
void resize_to_square(const cv::Mat& rgb, int size, ResizeMode mode, uint8_t* dst);

}  // namespace tlc
