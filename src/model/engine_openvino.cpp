// The OpenVINO engine: the backbone converted to OpenVINO IR once (by a child Python: only Python can read
// TorchScript into OpenVINO), cached by content, and run by OpenVINO's C++ CPU runtime with no Python.
#include "tlc/engine.h"

#include <unistd.h>

#include <atomic>
#include <cstring>

#include <filesystem>
#include <sstream>

#include "tlc/backbone.h"
#include "tlc/error.h"
#include "tlc/subprocess.h"
#include "tlc/util.h"

#ifdef TLC_WITH_OPENVINO
#include <openvino/openvino.hpp>

#include "ov_convert_source.h"  // k_ov_convert_source: src/model/ov_convert.py, embedded by CMake
#endif

namespace fs = std::filesystem;

namespace tlc {

#ifndef TLC_WITH_OPENVINO

bool openvino_available() { return false; }
std::string openvino_version() { return ""; }
std::unique_ptr<FrozenEngine> make_openvino_engine(torch::jit::Module, int64_t, const std::string&, int, int64_t,
                                                   const at::Tensor&) {
  throw Error("this build of tlc has no OpenVINO");
}

#else

bool openvino_available() { return true; }

std::string openvino_version() {
  // buildNumber reads "2026.4.1-22982-e213a147257-releases/2026/4": the release is the part before the first '-'.
  const std::string b = ov::get_openvino_version().buildNumber;
  return b.substr(0, b.find('-'));
}

namespace {

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// A float32 tensor as a .npy file (format 1.0), which the converter reads with numpy.load.
void write_npy(const fs::path& path, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  std::string shape;
  for (int64_t d : c.sizes()) shape += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  const size_t bytes = static_cast<size_t>(c.numel()) * sizeof(float);
  const bool ok = f && std::fwrite(out.data(), 1, out.size(), f) == out.size() &&
                  std::fwrite(c.data_ptr<float>(), 1, bytes, f) == bytes;
  if (f) std::fclose(f);
  if (!ok) throw Error("cannot write " + path.string() + " for the int8 calibration; set TLC_ENGINE_CACHE to a writable folder");
}

// The IR for this module (or its first `blocks` blocks) at this size: from the cache, else converted into it.
// The key is the module's serialized bytes (code, weights, buffers), OpenVINO's version, the size and the
// prefix, so a fine-tuned backbone gets an IR of its own and an upgrade of OpenVINO converts again; the
// converter's own source (a change of how it converts or quantizes converts again), and for an int8 IR its
// calibration images.
fs::path cached_ir(const torch::jit::Module& module, int64_t size, int64_t blocks, const at::Tensor& calibration) {
  std::ostringstream bytes;
  try {
    module.save(bytes);
  } catch (const c10::Error& e) {
    throw Error(std::string("the backbone cannot be serialized for the OpenVINO conversion: ") + e.what_without_backtrace());
  }
  const std::string blob = bytes.str();
  Hasher h;
  h.add(blob.data(), blob.size());
  h.add(openvino_version());
  h.add(std::string(k_ov_convert_source));  // how it is converted (and quantized: NNCF's settings live there)
  h.add(size);
  h.add(blocks);
  at::Tensor calib;
  if (calibration.defined()) {
    calib = calibration.to(at::kFloat).contiguous();
    h.add(std::string("int8"));
    h.add(calib.data_ptr<float>(), static_cast<size_t>(calib.numel()) * sizeof(float));
    for (int64_t d : calib.sizes()) h.add(d);
  }
  const fs::path root = engine_cache_dir();
  const fs::path dir = root / ((calib.defined() ? "openvino-int8-" : "openvino-") + hex(h.h));
  std::error_code ec;
  if (fs::exists(dir / "backbone.xml", ec) && fs::exists(dir / "backbone.bin", ec)) return dir;
  fs::create_directories(root, ec);
  if (ec) throw Error("cannot create the engine cache " + root.string() + " (" + ec.message() + "); set TLC_ENGINE_CACHE");
  // Unique per process and call: two threads (two estimators fitting in Python threads) may convert the same key.
  static std::atomic<int> calls{0};
  const fs::path tmp = root / ("tmp-" + hex(h.h) + "-" + std::to_string(getpid()) + "-" + std::to_string(calls++));
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  const fs::path in = tmp / "backbone.pt";
  {
    std::FILE* f = std::fopen(in.c_str(), "wb");
    if (!f || std::fwrite(blob.data(), 1, blob.size(), f) != blob.size()) {
      if (f) std::fclose(f);
      fs::remove_all(tmp, ec);
      throw Error("cannot write " + in.string() + " for the OpenVINO conversion; set TLC_ENGINE_CACHE to a writable folder");
    }
    std::fclose(f);
  }
  const std::string py = project_python();
  // PYTHONSAFEPATH: the current folder (a torch/ folder there) must not shadow the real packages.
  std::vector<std::string> args = {py, "-c", k_ov_convert_source, in.string(), tmp.string(), std::to_string(size)};
  if (blocks >= 0) args.push_back(std::to_string(blocks));
  const fs::path calib_file = tmp / "calibration.npy";
  if (calib.defined()) {
    try {
      write_npy(calib_file, calib);
    } catch (const Error&) {
      fs::remove_all(tmp, ec);
      throw;
    }
    args.insert(args.end(), {"--int8", calib_file.string()});
  }
  ChildResult r = run_child(args, {"PYTHONSAFEPATH=1"}, /*capture=*/true);
  fs::remove(in, ec);
  fs::remove(calib_file, ec);
  if (!r.started || r.signal != 0 || r.exit_code != 0) {
    fs::remove_all(tmp, ec);
    std::string why = r.output;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    const size_t nl = why.rfind('\n');
    if (nl != std::string::npos) why = why.substr(nl + 1);  // the converter's own one-line reason comes last
    throw Error("the OpenVINO conversion with " + py + " " + describe_child_end(r) + (why.empty() ? "" : ": " + why) +
                "; set TLC_PYTHON to a Python with torch and openvino" + (calib.defined() ? " and nncf" : "") +
                " (.venv/bin/python after scripts/setup.sh)");
  }
  fs::rename(tmp, dir, ec);
  if (ec) {  // another tlc converted the same backbone meanwhile: theirs is as good
    fs::remove_all(tmp, ec);
    if (!fs::exists(dir / "backbone.xml", ec)) throw Error("cannot move the converted engine into " + dir.string());
  }
  return dir;
}

class OpenVinoEngine final : public FrozenEngine {
 public:
  OpenVinoEngine(torch::jit::Module module, int64_t size, const std::string& precision, int threads, int64_t blocks,
                 at::Tensor calibration)
      : module_(std::move(module)), size_(size), precision_(precision), threads_(threads), blocks_(blocks),
        calibration_(std::move(calibration)) {
    if (precision_ == "int8" && !calibration_.defined())
      throw Error("int8 needs calibration images (normalized like the input), and none were given");
    build();
  }

  at::Tensor forward(const at::Tensor& x) override {
    return run(x, false, [](const ov::Tensor& out) {
      const ov::Shape s = out.get_shape();
      std::vector<int64_t> shape(s.begin(), s.end());
      // The output buffer belongs to the request and is reused by its next call: copy it out.
      at::Tensor y = at::empty(shape, at::kFloat);
      std::memcpy(y.data_ptr<float>(), out.data<float>(), out.get_byte_size());
      return y;
    });
  }

  // The spatial mean on this thread, in double, straight from the request's buffer. No ATen op runs between
  // two inferences: an ATen op big enough to go parallel leaves the OpenMP pool of PyTorch's runtime spinning
  // for a while after it (libgomp's default wait policy), on the cores OpenVINO's own threads are about to use.
  // That cost ResNet-50 a quarter of its throughput at batch 1 on 2 cores (docs/BENCHMARKS_ENGINES.md).
  at::Tensor pooled(const at::Tensor& x) override {
    if (blocks_ >= 0) return FrozenEngine::pooled(x);  // a prefix's maps: not the backbone's features
    return run(x, true, [](const ov::Tensor& out) {
      const ov::Shape s = out.get_shape();
      if (s.size() != 4) throw Error("the OpenVINO engine's output has " + std::to_string(s.size()) + " dimensions, not 4");
      const int64_t n = static_cast<int64_t>(s[0]), c = static_cast<int64_t>(s[1]),
                    hw = static_cast<int64_t>(s[2] * s[3]);
      at::Tensor y = at::empty({n, c}, at::kFloat);
      const float* src = out.data<float>();
      float* dst = y.data_ptr<float>();
      for (int64_t i = 0; i < n * c; ++i, src += hw) {
        double sum = 0;
        for (int64_t k = 0; k < hw; ++k) sum += src[k];
        dst[i] = hw > 0 ? static_cast<float>(sum / static_cast<double>(hw)) : 0.0f;
      }
      return y;
    });
  }
  void weights_changed() override { stale_ = true; }
  void to(const c10::Device& device) override {
    if (!device.is_cpu()) throw Error("the OpenVINO engine runs on the CPU only; use --engine torchscript on CUDA");
  }
  std::string name() const override {
    if (!failed_.empty()) return "torchscript fp32 (the fine-tuned backbone's OpenVINO engine failed: " + failed_ + ")";
    return "openvino " + openvino_version() + " " + precision_;
  }

 private:
  torch::jit::Module module_;
  int64_t size_;
  std::string precision_;
  int threads_;
  int64_t blocks_;  // -1: the whole backbone
  at::Tensor calibration_;  // int8: the images its activation ranges come from (kept for fine-tuned weights)
  ov::Core core_;
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
  bool stale_ = false;
  std::string failed_;  // why the engine of changed weights could not be made

  // One inference of x, its output turned into the result by `take` (a copy of the maps, or their means).
  // When OpenVINO cannot run x, the module answers (pooled too when `pool`).
  template <typename Take>
  at::Tensor run(const at::Tensor& x, bool pool, Take take) {
    torch::NoGradGuard ng;
    auto module_answers = [&] { return pool ? fallback_forward(x).mean({2, 3}) : fallback_forward(x); };
    if (stale_) {
      // Fine-tuned weights: a conversion of its own. When that fails, the module itself answers from now on (the
      // same results within tolerance), and name() says so.
      try {
        build();
      } catch (const std::exception& e) {
        failed_ = e.what();
        stale_ = false;
      }
    }
    // Another size than the IR's (a probe), or a device OpenVINO does not run on: the module answers.
    if (!failed_.empty() || !x.device().is_cpu() || x.dim() != 4 || x.size(2) != size_ || x.size(3) != size_)
      return module_answers();
    at::Tensor in = x.to(at::kFloat).contiguous();
    ov::Tensor t(ov::element::f32, ov::Shape(in.sizes().begin(), in.sizes().end()), in.data_ptr<float>());
    try {
      request_.set_input_tensor(t);
      request_.infer();
    } catch (const std::exception& e) {
      // An inference failure is not a crash: the module answers from now on, and name() says why.
      failed_ = std::string("inference failed: ") + e.what();
      return module_answers();
    }
    return take(request_.get_output_tensor());
  }

  // The module itself: the whole forward, or the prefix exactly as Backbone::forward_range runs it.
  at::Tensor fallback_forward(const at::Tensor& x) {
    return blocks_ < 0 ? module_.forward({x}).toTensor() : forward_blocks(module_, x, 0, blocks_);
  }

  void build() {
    const bool int8 = precision_ == "int8";
    const fs::path dir = cached_ir(module_, size_, blocks_, int8 ? calibration_ : at::Tensor());
    std::shared_ptr<ov::Model> model = core_.read_model((dir / "backbone.xml").string());
    ov::AnyMap cfg{ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
    // int8: the quantized layers run in int8 whatever the hint; the rest (the first layer, pooling) in the CPU
    // plugin's default, bf16 on bf16 hardware and f32 elsewhere.
    if (!int8) cfg.emplace(ov::hint::inference_precision(precision_ == "bf16" ? ov::element::bf16 : ov::element::f32));
    if (threads_ > 0) cfg.emplace(ov::inference_num_threads(threads_));
    compiled_ = core_.compile_model(model, "CPU", cfg);
    request_ = compiled_.create_infer_request();
    stale_ = false;
    failed_.clear();  // an earlier failed rebuild is over once this one worked
  }
};

}  // namespace

std::unique_ptr<FrozenEngine> make_openvino_engine(torch::jit::Module module, int64_t size, const std::string& precision,
                                                   int threads, int64_t prefix_blocks, const at::Tensor& calibration) {
  try {
    return std::make_unique<OpenVinoEngine>(std::move(module), size, precision, threads, prefix_blocks, calibration);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // ov::Exception, c10::Error, filesystem errors: all mean "fall back"
    std::string m = e.what();
    throw Error("OpenVINO could not make the engine: " + m.substr(0, m.find('\n')));
  }
}

#endif  // TLC_WITH_OPENVINO

}  // namespace tlc
