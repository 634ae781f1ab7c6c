#pragma once
// What the engine tests share (tests/test_engine.cpp, tests/test_int8.cpp): CPUs by hand (the choice is a pure
// function of the features), an engine request, a fresh engine cache per test, and its entries.
#include <cstdlib>
#include <filesystem>
#include <string>

#include "tlc/backbone.h"
#include "tlc/engine.h"

namespace tlc_test {

inline tlc::CpuFeatures avx2_only() {
  tlc::CpuFeatures f;
  f.avx2 = true;
  return f;
}

inline tlc::CpuFeatures sapphire_rapids() {
  tlc::CpuFeatures f;
  f.avx2 = f.avx512 = f.avx512_vnni = f.avx512_bf16 = f.amx_bf16 = f.amx_int8 = true;
  return f;
}

inline tlc::EngineRequest request(const tlc::CpuFeatures& cpu, const std::string& engine = "auto",
                                  const std::string& precision = "auto", bool openvino = true, bool cuda = false) {
  tlc::EngineRequest r;
  r.cpu = cpu;
  r.engine = engine;
  r.precision = precision;
  r.openvino_built = openvino;
  r.cuda = cuda;
  return r;
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A fresh engine cache (and optionally another Python) for one test; restored after it.
class EngineEnv {
 public:
  explicit EngineEnv(const std::string& cache) {
    setenv("TLC_ENGINE_CACHE", cache.c_str(), 1);
    const char* py = std::getenv("TLC_PYTHON");
    had_python_ = py != nullptr;
    if (py) python_ = py;
  }
  void python(const std::string& p) { setenv("TLC_PYTHON", p.c_str(), 1); }
  ~EngineEnv() {
    unsetenv("TLC_ENGINE_CACHE");
    if (had_python_) setenv("TLC_PYTHON", python_.c_str(), 1);
    else unsetenv("TLC_PYTHON");
  }

 private:
  bool had_python_ = false;
  std::string python_;
};

// Entries of an engine cache whose name starts with `prefix` ("openvino-" counts the int8 ones too).
inline int cache_entries(const std::string& dir, const std::string& prefix = "openvino-") {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

// The float32 module's pooled features: what every engine is compared with.
inline at::Tensor reference_features(tlc::Backbone& b, const at::Tensor& x) {
  torch::NoGradGuard ng;
  return b.module().forward({x}).toTensor().mean({2, 3});
}

}  // namespace tlc_test
