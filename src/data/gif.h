#pragma once
// GIF input through giflib: the first frame only (an animation's later frames are not training images).
#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>

#include "tlc/image_io.h"

namespace tlc {

bool is_gif(const uint8_t* d, std::size_t n);

// Decodes the first frame into RGB (CV_8UC3) on the logical screen. Sizes (the screen's and the frame's) are
// checked against max_pixels before anything is allocated. Returns false with st.error set.
bool decode_gif_first_frame(const uint8_t* d, std::size_t n, int64_t max_pixels, cv::Mat& out, DecodeStatus& st);

}  // namespace tlc
