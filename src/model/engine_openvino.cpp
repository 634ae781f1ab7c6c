// The OpenVINO engine: the backbone converted to OpenVINO IR once (by a child Python: only Python can read
// TorchScript into OpenVINO), cached by content, and run by OpenVINO's C++ CPU runtime with no Python.
#include "tlc/engine.h"

#include <unistd.h>

#include <atomic>

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
std::unique_ptr<FrozenEngine> make_openvino_engine(torch::jit::Module, int64_t, const std::string&, int, int64_t) {
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

// The IR for this module (or its first `blocks` blocks) at this size: from the cache, else converted into it.
// The key is the module's serialized bytes (code, weights, buffers), OpenVINO's version, the size and the
// prefix, so a fine-tuned backbone gets an IR of its own and an upgrade of OpenVINO converts again.
fs::path cached_ir(const torch::jit::Module& module, int64_t size, int64_t blocks) {
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
  h.add(size);
  h.add(blocks);
  const fs::path root = engine_cache_dir();
  const fs::path dir = root / ("openvino-" + hex(h.h));
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
  ChildResult r = run_child(args, {"PYTHONSAFEPATH=1"}, /*capture=*/true);
  fs::remove(in, ec);
  if (!r.started || r.signal != 0 || r.exit_code != 0) {
    fs::remove_all(tmp, ec);
    std::string why = r.output;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    const size_t nl = why.rfind('\n');
    if (nl != std::string::npos) why = why.substr(nl + 1);  // the converter's own one-line reason comes last
    throw Error("the OpenVINO conversion with " + py + " " + describe_child_end(r) + (why.empty() ? "" : ": " + why) +
                "; set TLC_PYTHON to a Python with torch and openvino (.venv/bin/python after scripts/setup.sh)");
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
  OpenVinoEngine(torch::jit::Module module, int64_t size, const std::string& precision, int threads, int64_t blocks)
      : module_(std::move(module)), size_(size), precision_(precision), threads_(threads), blocks_(blocks) {
    build();
  }

  at::Tensor forward(const at::Tensor& x) override {
    torch::NoGradGuard ng;
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
      return fallback_forward(x);
    at::Tensor in = x.to(at::kFloat).contiguous();
    ov::Tensor t(ov::element::f32, ov::Shape(in.sizes().begin(), in.sizes().end()), in.data_ptr<float>());
    try {
      request_.set_input_tensor(t);
      request_.infer();
    } catch (const std::exception& e) {
      // An inference failure is not a crash: the module answers from now on, and name() says why.
      failed_ = std::string("inference failed: ") + e.what();
      return fallback_forward(x);
    }
    ov::Tensor out = request_.get_output_tensor();
    const ov::Shape s = out.get_shape();
    std::vector<int64_t> shape(s.begin(), s.end());
    // The output buffer belongs to the request and is reused by its next call: copy it out.
    return at::from_blob(out.data<float>(), shape, at::kFloat).clone();
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
  ov::Core core_;
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
  bool stale_ = false;
  std::string failed_;  // why the engine of changed weights could not be made

  // The module itself: the whole forward, or the prefix exactly as Backbone::forward_range runs it.
  at::Tensor fallback_forward(const at::Tensor& x) {
    return blocks_ < 0 ? module_.forward({x}).toTensor() : forward_blocks(module_, x, 0, blocks_);
  }

  void build() {
    const fs::path dir = cached_ir(module_, size_, blocks_);
    std::shared_ptr<ov::Model> model = core_.read_model((dir / "backbone.xml").string());
    ov::AnyMap cfg{ov::hint::inference_precision(precision_ == "bf16" ? ov::element::bf16 : ov::element::f32),
                   ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
    if (threads_ > 0) cfg.emplace(ov::inference_num_threads(threads_));
    compiled_ = core_.compile_model(model, "CPU", cfg);
    request_ = compiled_.create_infer_request();
    stale_ = false;
    failed_.clear();  // an earlier failed rebuild is over once this one worked
  }
};

}  // namespace

std::unique_ptr<FrozenEngine> make_openvino_engine(torch::jit::Module module, int64_t size, const std::string& precision,
                                                   int threads, int64_t prefix_blocks) {
  try {
    return std::make_unique<OpenVinoEngine>(std::move(module), size, precision, threads, prefix_blocks);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // ov::Exception, c10::Error, filesystem errors: all mean "fall back"
    std::string m = e.what();
    throw Error("OpenVINO could not make the engine: " + m.substr(0, m.find('\n')));
  }
}

#endif  // TLC_WITH_OPENVINO

}  // namespace tlc
