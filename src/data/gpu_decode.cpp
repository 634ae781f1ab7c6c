// --decode: the choice between the CPU and GPU decoders, and the parts of GpuDecoder that do not touch nvJPEG
// (the nvJPEG side is src/data/nvjpeg_decoder.cpp, built when TLC_WITH_NVJPEG).
#include "tlc/gpu_decode.h"

#include <atomic>
#include <iostream>

#include "tlc/error.h"
#include "tlc/util.h"

namespace tlc {

DecodeBackend parse_decode_backend(const std::string& name) {
  if (name == "auto") return DecodeBackend::automatic;
  if (name == "cpu") return DecodeBackend::cpu;
  if (name == "gpu") return DecodeBackend::gpu;
  throw Error("unknown decoder '" + name + "'; choose auto, cpu or gpu");
}

std::string to_string(DecodeBackend b) {
  switch (b) {
    case DecodeBackend::automatic: return "auto";
    case DecodeBackend::cpu: return "cpu";
    case DecodeBackend::gpu: return "gpu";
  }
  return "auto";
}

bool gpu_decode_compiled() {
#ifdef TLC_WITH_NVJPEG
  return true;
#else
  return false;
#endif
}

bool use_gpu_decode(DecodeBackend b, const c10::Device& device) {
  if (b == DecodeBackend::cpu) return false;
  if (b == DecodeBackend::automatic) return device.is_cuda() && gpu_decode_compiled();
  if (!device.is_cuda())
    throw Error("--decode gpu decodes on the CUDA device, but this run uses " + device.str() +
                "; use --device cuda, or --decode cpu");
  if (!gpu_decode_compiled())
    throw Error("--decode gpu: this build has no GPU JPEG decoder (nvJPEG was not found when tlc was built: install "
                "the nvidia-nvjpeg wheel into the venv and rebuild, see docs/GPU.md); use --decode cpu");
  return true;
}

std::unique_ptr<GpuDecoder> open_gpu_decoder(DecodeBackend b, const c10::Device& device) {
  static std::atomic<bool> failed{false};  // nvJPEG that could not start once will not start later either
  if (!use_gpu_decode(b, device) || (b == DecodeBackend::automatic && failed.load())) return nullptr;
  try {
    return std::make_unique<GpuDecoder>(device);
  } catch (const Error& e) {
    if (b == DecodeBackend::gpu) throw;
    if (!failed.exchange(true))
      std::cerr << "tlc: warning: GPU JPEG decoding is unavailable (" << e.what() << "): decoding on the CPU"
                << std::endl;
    return nullptr;
  }
}

at::Tensor GpuDecoder::decode_files(const std::string* paths, std::size_t n, const DecodeOptions& opt,
                                    DecodeStatus* status, int threads) {
  std::vector<std::vector<uint8_t>> bytes(n);
  std::vector<const std::vector<uint8_t>*> encoded(n, nullptr);
  parallel_for(n, threads, [&](std::size_t i) {
    status[i] = DecodeStatus{};
    if (read_file_bytes(paths[i], bytes[i], &status[i].error)) encoded[i] = &bytes[i];
  });
  return decode(encoded, opt, status, threads);
}

#ifndef TLC_WITH_NVJPEG
struct GpuDecoder::Impl {};

GpuDecoder::GpuDecoder(c10::Device device) {
  use_gpu_decode(DecodeBackend::gpu, device);  // throws the reason
}
GpuDecoder::~GpuDecoder() = default;
at::Tensor GpuDecoder::decode(const std::vector<const std::vector<uint8_t>*>&, const DecodeOptions&, DecodeStatus*,
                              int) {
  throw Error("this build has no GPU JPEG decoder");
}
GpuDecoder::Counts GpuDecoder::counts() const { return {}; }
std::string GpuDecoder::backend() const { return "none"; }
#endif

}  // namespace tlc
