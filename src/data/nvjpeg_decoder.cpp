// GpuDecoder on nvJPEG: the JPEGs it may take (gpu_jpeg_refusal, and on the hardware backend what
// nvjpegDecodeBatchedSupported accepts) are decoded in one nvjpegDecodeBatched call at full size into
// interleaved RGB, then resized on the GPU (cuda/resize.cu, the CPU path's geometry and interpolation rule);
// the rest is decoded by the CPU path on the decoding threads and copied up. Everything runs on a
// stream of the decoder's own and is finished when decode() returns; the output is marked as used by the
// caller's stream, so the caching allocator does not hand its memory out again before the caller is done.
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nvjpeg.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "../../cuda/resize.cuh"
#include "jpeg_header.h"
#include "tlc/error.h"
#include "tlc/gpu_decode.h"
#include "tlc/util.h"

namespace tlc {
namespace {

const char* nvjpeg_error(nvjpegStatus_t s) {
  switch (s) {
    case NVJPEG_STATUS_SUCCESS: return "success";
    case NVJPEG_STATUS_NOT_INITIALIZED: return "not initialized";
    case NVJPEG_STATUS_INVALID_PARAMETER: return "invalid parameter";
    case NVJPEG_STATUS_BAD_JPEG: return "bad JPEG";
    case NVJPEG_STATUS_JPEG_NOT_SUPPORTED: return "JPEG not supported";
    case NVJPEG_STATUS_ALLOCATOR_FAILURE: return "allocator failure (out of GPU memory?)";
    case NVJPEG_STATUS_EXECUTION_FAILED: return "execution failed";
    case NVJPEG_STATUS_ARCH_MISMATCH: return "not supported on this GPU";
    case NVJPEG_STATUS_INTERNAL_ERROR: return "internal error";
    case NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED: return "not implemented";
    case NVJPEG_STATUS_INCOMPLETE_BITSTREAM: return "incomplete bitstream";
  }
  return "unknown nvJPEG status";
}

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace

struct GpuDecoder::Impl {
  c10::Device device;
  c10::cuda::CUDAStream stream;
  nvjpegHandle_t handle = nullptr;
  nvjpegJpegState_t state = nullptr;
  nvjpegJpegStream_t parsed = nullptr;  // header parse for the hardware backend's per-image check
  bool hardware = false;
  std::string backend_name;
  int batch_initialized = -1;
  Counts counts;

  explicit Impl(c10::Device d) : device(d), stream(c10::cuda::getStreamFromPool(false, d.index())) {}
  ~Impl() {
    if (parsed) nvjpegJpegStreamDestroy(parsed);
    if (state) nvjpegJpegStateDestroy(state);
    if (handle) nvjpegDestroy(handle);
  }
};

GpuDecoder::GpuDecoder(c10::Device device) {
  use_gpu_decode(DecodeBackend::gpu, device);
  if (!device.has_index()) device = c10::Device(c10::kCUDA, c10::cuda::current_device());
  c10::cuda::CUDAGuard guard(device);
  impl_ = std::make_unique<Impl>(device);
  // The hardware JPEG engines (A100, H100/H200) first, then the GPU-assisted Huffman decoder; TLC_NVJPEG_BACKEND
  // (hardware | gpu_hybrid | default) forces one, to compare them.
  const char* forced = std::getenv("TLC_NVJPEG_BACKEND");
  struct Choice {
    nvjpegBackend_t backend;
    const char* name;
  };
  std::vector<Choice> order = {{NVJPEG_BACKEND_HARDWARE, "hardware"},
                               {NVJPEG_BACKEND_GPU_HYBRID, "gpu_hybrid"},
                               {NVJPEG_BACKEND_DEFAULT, "default"}};
  if (forced && *forced) {
    const std::string f = forced;
    std::vector<Choice> one;
    for (const Choice& c : order)
      if (f == c.name) one.push_back(c);
    if (one.empty()) throw Error("TLC_NVJPEG_BACKEND=" + f + ": choose hardware, gpu_hybrid or default");
    order = one;
  }
  // Chroma upsampling with interpolation, as libjpeg-turbo does (nvJPEG's default replicates chroma pixels,
  // which differs by tens of levels at colour edges).
  nvjpegStatus_t s = NVJPEG_STATUS_NOT_INITIALIZED;
  for (const Choice& c : order) {
    s = nvjpegCreateEx(c.backend, nullptr, nullptr, NVJPEG_FLAGS_UPSAMPLING_WITH_INTERPOLATION, &impl_->handle);
    if (s == NVJPEG_STATUS_SUCCESS) {
      impl_->hardware = c.backend == NVJPEG_BACKEND_HARDWARE;
      impl_->backend_name = c.name;
      break;
    }
    impl_->handle = nullptr;
  }
  if (s != NVJPEG_STATUS_SUCCESS)
    throw Error(std::string("nvJPEG could not start on ") + device.str() + " (" + nvjpeg_error(s) + "); use --decode cpu");
  if ((s = nvjpegJpegStateCreate(impl_->handle, &impl_->state)) != NVJPEG_STATUS_SUCCESS ||
      (s = nvjpegJpegStreamCreate(impl_->handle, &impl_->parsed)) != NVJPEG_STATUS_SUCCESS)
    throw Error(std::string("nvJPEG state: ") + nvjpeg_error(s) + "; use --decode cpu");
}

GpuDecoder::~GpuDecoder() = default;

GpuDecoder::Counts GpuDecoder::counts() const { return impl_->counts; }
std::string GpuDecoder::backend() const { return impl_->backend_name; }

at::Tensor GpuDecoder::decode(const std::vector<const std::vector<uint8_t>*>& encoded, const DecodeOptions& opt,
                              DecodeStatus* status, int threads) {
  Impl& m = *impl_;
  const int64_t n = static_cast<int64_t>(encoded.size());
  const int64_t S = opt.size, per = S * S * 3;
  // The stream the caller's thread works on. The prefetch worker that calls this and the training loop that
  // takes its batches both use the default stream, so this is also the consumer's stream.
  const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(m.device.index());
  c10::cuda::CUDAGuard device_guard(m.device);
  c10::cuda::CUDAStreamGuard stream_guard(m.stream);  // allocations below belong to the decoder's stream
  const auto u8 = at::TensorOptions().dtype(at::kByte).device(m.device);
  at::Tensor out = at::zeros({n, S, S, 3}, u8);

  // Which images go to nvJPEG: headers read on this thread, in order (the hardware check reads headers only).
  std::vector<int64_t> on_gpu, on_cpu;
  std::vector<JpegHeader> headers(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (!encoded[i]) continue;  // the caller set its status (e.g. an unreadable file)
    status[i] = DecodeStatus{};
    const auto& b = *encoded[i];
    bool gpu = !b.empty() && gpu_jpeg_refusal(b.data(), b.size(), opt.max_pixels, &headers[i]).empty();
    if (gpu && m.hardware) {
      int unsupported = 1;
      gpu = nvjpegJpegStreamParseHeader(m.handle, b.data(), b.size(), m.parsed) == NVJPEG_STATUS_SUCCESS &&
            nvjpegDecodeBatchedSupported(m.handle, m.parsed, &unsupported) == NVJPEG_STATUS_SUCCESS && unsupported == 0;
    }
    (gpu ? on_gpu : on_cpu).push_back(i);
  }

  // nvJPEG: one batched call into one buffer, full size, interleaved RGB, then the resize kernel; queued on the
  // decoder's stream, so the CPU path below runs while the GPU (or its JPEG engines) work. What the queued work
  // reads from the host (data, lengths, dst, jobs) lives until the synchronization at the end.
  const int mcount = static_cast<int>(on_gpu.size());
  std::vector<int64_t> offset(on_gpu.size() + 1, 0);
  std::vector<const unsigned char*> data;
  std::vector<size_t> lengths;
  std::vector<nvjpegImage_t> dst(on_gpu.size());
  std::vector<cuda::ResizeJob> jobs;
  at::Tensor full;
  if (mcount > 0) {
    for (size_t k = 0; k < on_gpu.size(); ++k) {
      const JpegHeader& h = headers[on_gpu[k]];
      offset[k + 1] = offset[k] + static_cast<int64_t>(h.width) * h.height * 3;
    }
    // A batch whose full-size pixels do not fit in GPU memory is decoded on the CPU instead of failing the run.
    try {
      full = at::empty({offset.back()}, u8);
    } catch (const c10::OutOfMemoryError&) {
      ++m.counts.failed_batches;
    }
    for (size_t k = 0; k < on_gpu.size(); ++k) {
      const auto& b = *encoded[on_gpu[k]];
      data.push_back(b.data());
      lengths.push_back(b.size());
      std::memset(&dst[k], 0, sizeof(nvjpegImage_t));
      if (full.defined()) dst[k].channel[0] = full.data_ptr<uint8_t>() + offset[k];
      dst[k].pitch[0] = static_cast<size_t>(headers[on_gpu[k]].width) * 3;
    }
    nvjpegStatus_t s = full.defined() ? NVJPEG_STATUS_SUCCESS : NVJPEG_STATUS_ALLOCATOR_FAILURE;
    if (s == NVJPEG_STATUS_SUCCESS && m.batch_initialized != mcount) {
      s = nvjpegDecodeBatchedInitialize(m.handle, m.state, mcount, 1, NVJPEG_OUTPUT_RGBI);
      m.batch_initialized = s == NVJPEG_STATUS_SUCCESS ? mcount : -1;
    }
    if (s == NVJPEG_STATUS_SUCCESS)
      s = nvjpegDecodeBatched(m.handle, m.state, data.data(), lengths.data(), dst.data(), m.stream.stream());
    if (s != NVJPEG_STATUS_SUCCESS) {
      // One bad image fails the whole batch: decode them all on the CPU, which reports each file. The batched
      // state is initialized again before the next batch (that is how nvJPEG resets a failed batch).
      if (full.defined()) ++m.counts.failed_batches;
      m.batch_initialized = -1;
      on_cpu.insert(on_cpu.end(), on_gpu.begin(), on_gpu.end());
      std::sort(on_cpu.begin(), on_cpu.end());
      on_gpu.clear();
    } else {
      for (size_t k = 0; k < on_gpu.size(); ++k) {
        const JpegHeader& h = headers[on_gpu[k]];
        jobs.push_back(cuda::make_resize_job(full.data_ptr<uint8_t>() + offset[k], static_cast<int64_t>(h.width) * 3,
                                             h.width, h.height, static_cast<int>(S), static_cast<int>(opt.resize)));
        DecodeStatus& st = status[on_gpu[k]];
        st.ok = true;
        st.width = h.width;
        st.height = h.height;
      }
      at::Tensor job_dev = at::empty({static_cast<int64_t>(jobs.size() * sizeof(cuda::ResizeJob))}, u8);
      check_cuda(cudaMemcpyAsync(job_dev.data_ptr(), jobs.data(), jobs.size() * sizeof(cuda::ResizeJob),
                                 cudaMemcpyHostToDevice, m.stream.stream()),
                 "copying resize jobs");
      at::Tensor resized = at::empty({mcount, S, S, 3}, u8);
      check_cuda(cuda::launch_resize(reinterpret_cast<const cuda::ResizeJob*>(job_dev.data_ptr()), mcount,
                                     static_cast<int>(S), resized.data_ptr<uint8_t>(), m.stream.stream()),
                 "GPU resize kernel");
      out.index_copy_(0, at::tensor(on_gpu, at::kLong).to(m.device), resized);
    }
  }

  // The CPU path for the rest, into pinned memory, then one copy up.
  if (!on_cpu.empty()) {
    at::Tensor host = at::empty({static_cast<int64_t>(on_cpu.size()), S, S, 3},
                                at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    parallel_for(on_cpu.size(), threads, [&](size_t k) {
      const auto& b = *encoded[on_cpu[k]];
      uint8_t* rows = host.data_ptr<uint8_t>() + static_cast<int64_t>(k) * per;
      status[on_cpu[k]] = decode_resized(b.data(), b.size(), rows, opt);
      if (!status[on_cpu[k]].ok) std::memset(rows, 0, static_cast<size_t>(per));
    });
    out.index_copy_(0, at::tensor(on_cpu, at::kLong).to(m.device), host.to(m.device, /*non_blocking=*/true));
  }
  m.counts.gpu += static_cast<int64_t>(on_gpu.size());
  m.counts.cpu += static_cast<int64_t>(on_cpu.size());
  check_cuda(cudaStreamSynchronize(m.stream.stream()), "GPU JPEG decoding");
  c10::cuda::CUDACachingAllocator::recordStream(out.storage().data_ptr(), caller);
  return out;
}

}  // namespace tlc
