#pragma once
// GPU JPEG decoding (nvJPEG, batched; the hardware JPEG engines where the GPU has them) followed by the resize
// on the GPU with the CPU path's rule (cuda/resize_tile.h). Files the GPU decoder does not take (progressive,
// grayscale, CMYK, EXIF-rotated, truncated, PNG and the other formats: see gpu_jpeg_refusal) are decoded by
// the CPU path (decode_resized) on the decoding threads and copied up, so every file gets the same status and
// reports as with --decode cpu.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tlc/image_io.h"

namespace tlc {

// --decode: auto (the GPU when the device is CUDA and this build has nvJPEG), cpu, gpu.
enum class DecodeBackend { automatic, cpu, gpu };
DecodeBackend parse_decode_backend(const std::string& name);  // throws tlc::Error naming the choices
std::string to_string(DecodeBackend b);

// True when this build has the nvJPEG decoder (TLC_WITH_NVJPEG).
bool gpu_decode_compiled();

// Whether images for `device` are decoded on the GPU. auto: CUDA device and nvJPEG built in. gpu: throws
// tlc::Error naming the way out when the device is not CUDA or the build has no nvJPEG.
bool use_gpu_decode(DecodeBackend b, const c10::Device& device);

class GpuDecoder;

// The decoder for --decode `b` on `device`, or null when images are decoded on the CPU. With auto, a GPU
// decoder that cannot start (an nvJPEG error) means the CPU, said once per process on stderr; with gpu it is
// the error.
std::unique_ptr<GpuDecoder> open_gpu_decoder(DecodeBackend b, const c10::Device& device);

class GpuDecoder {
 public:
  // Throws tlc::Error when this build has no nvJPEG or nvJPEG cannot start on `device`.
  explicit GpuDecoder(c10::Device device);
  ~GpuDecoder();
  GpuDecoder(const GpuDecoder&) = delete;
  GpuDecoder& operator=(const GpuDecoder&) = delete;

  // Decodes and resizes `n` encoded images: uint8 [n, S, S, 3] RGB on the device (S = opt.size), ready when
  // this returns. status[i] says how image i went, as decode_resized would; rows of failed images are zeros.
  // A null entry is skipped (its status is left as the caller set it). The CPU path runs on `threads`
  // decoding threads (0 = all cores). Use from one thread at a time.
  at::Tensor decode(const std::vector<const std::vector<uint8_t>*>& encoded, const DecodeOptions& opt,
                    DecodeStatus* status, int threads);
  // The same for files read on the decoding threads (a file that cannot be read is a failed status).
  at::Tensor decode_files(const std::string* paths, std::size_t n, const DecodeOptions& opt, DecodeStatus* status,
                          int threads);

  struct Counts {
    int64_t gpu = 0;            // decoded by nvJPEG
    int64_t cpu = 0;            // by the CPU path (refused by the GPU decoder, or a batch it failed)
    int64_t failed_batches = 0; // nvJPEG batches that failed and were decoded again on the CPU
  };
  Counts counts() const;
  std::string backend() const;  // "hardware" or "default" (nvJPEG's hybrid CPU/GPU decoder)

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tlc
