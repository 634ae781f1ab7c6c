// libFuzzer target for the image-decoding entry point: arbitrary bytes in, an image or an error out, never a
// crash, a hang or a read outside the buffer. Built and run by scripts/fuzz.sh (clang, -fsanitize=fuzzer).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tlc/image_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<uint8_t> out(32 * 32 * 3);
  tlc::DecodeOptions opt;
  opt.size = 32;
  opt.max_pixels = 4'000'000;  // keeps each input's work bounded, as --max-pixels does for users
  tlc::DecodeStatus st = tlc::decode_resized(data, size, out.data(), opt);
  if (st.ok && !st.error.empty()) __builtin_trap();  // a success never carries an error
  return 0;
}
