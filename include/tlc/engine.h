#pragma once
// Engines for the frozen backbone's passes (the first pass and feature extraction, evaluate, predict, bench):
// one interface, with the TorchScript module (the reference) and a compiled engine (OpenVINO's CPU runtime)
// behind it. Which engine and precision run is decided in one place, choose_engine(), from facts a test can
// inject (the CPU's features, the device, the user's --engine/--precision); docs/ENGINES.md has the design.
#include <torch/script.h>

#include <memory>
#include <string>

namespace tlc {

// What the processor offers for the frozen passes. detect_cpu_features() reads it through cpuinfo (ATen's
// at::cpu::get_cpu_capabilities); tests build one by hand.
struct CpuFeatures {
  bool avx2 = false;
  bool avx512 = false;       // AVX512F
  bool avx_vnni = false;     // AVX-VNNI (256-bit; Alder Lake and later client CPUs)
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool amx_bf16 = false;
  bool amx_int8 = false;
  std::string name;          // the processor's name, when cpuinfo knows it
  bool has_bf16() const { return amx_bf16 || avx512_bf16; }
  bool has_int8() const { return amx_int8 || avx512_vnni || avx_vnni; }  // int8 dot products in hardware
  // E.g. "AVX2" or "AVX512F AVX512-VNNI AVX512-BF16 AMX-BF16 AMX-INT8": the features that matter here.
  std::string describe() const;
};
CpuFeatures detect_cpu_features();

// What the user asked for (--engine, --precision) and the facts the choice depends on.
struct EngineRequest {
  std::string engine = "auto";     // auto | torchscript | openvino
  std::string precision = "auto";  // auto | fp32 | tf32 | bf16 | int8
  bool cuda = false;               // the backbone runs on a CUDA device
  CpuFeatures cpu;
  bool openvino_built = false;     // this build links OpenVINO (openvino_available())
};

struct EngineChoice {
  std::string engine;     // torchscript | openvino
  std::string precision;  // fp32 | tf32 | bf16 | int8
  std::string reason;     // why, in words: the CPU feature seen, the build, the flag
};

// The one place that decides. Throws tlc::Error for an unknown or impossible request (e.g. --engine openvino
// on CUDA), naming the flag and the way out. Never picks bf16 on a CPU without bf16 hardware (emulated bf16 is
// many times slower than fp32); an explicit --precision bf16 there is kept, with the reason saying so. int8 is
// never automatic (it changes results by more than rounding: `tlc evaluate` measures by how much) and runs on
// OpenVINO only, so int8 on CUDA, with --engine torchscript or in a build without OpenVINO is an error.
EngineChoice choose_engine(const EngineRequest& req);

// The request for --engine/--precision on `device`, with this CPU's features (detected once) and this build's
// OpenVINO.
EngineRequest engine_request(const std::string& engine, const std::string& precision, const c10::Device& device);

// Whether this build links OpenVINO, and its version ("" when not).
bool openvino_available();
std::string openvino_version();

// A frozen pass: a normalized batch in, the backbone's feature map out (float32, on the input's device).
class FrozenEngine {
 public:
  virtual ~FrozenEngine() = default;
  // x: the batch as input_dtype()/channels_last() say (the normalize kernel writes that layout directly).
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  // forward(x) averaged over its spatial dimensions: float [N,C] (the frozen features). Engines whose own
  // threads do the work override it to average on the calling thread (see OpenVinoEngine).
  virtual at::Tensor pooled(const at::Tensor& x) { return forward(x).mean({2, 3}); }
  virtual at::ScalarType input_dtype() const { return at::kFloat; }
  virtual bool channels_last() const { return false; }
  // The backbone's weights changed (fine-tuning): take them again before the next forward.
  virtual void weights_changed() = 0;
  virtual void to(const c10::Device& device) = 0;
  // "torchscript fp32", "openvino 2026.4.1 bf16", ...: fixed once built (the disk cache keys on it).
  virtual std::string name() const = 0;
  // What happened since it was built, when that is worth a line ("" for most engines; the CUDA-graph engine:
  // how many graphs it captured and replayed, or why graphs went off).
  virtual std::string status() const { return ""; }
};

// The reference: the module itself in float32, or a copy in `dtype` with channels-last weights (bf16/fp16).
std::unique_ptr<FrozenEngine> make_torchscript_engine(torch::jit::Module module, at::ScalarType dtype);
// CUDA graphs around `inner` (src/model/engine_cuda_graph.cpp, builds with CUDA only): on a CUDA device, a
// batch of up to 32 images whose shape was seen twice is captured into a graph once and replayed from then on
// (one launch instead of the backbone's hundreds; 4 shapes at most, least recently used out); larger batches,
// and CPU inputs, run `inner` as is. A failed capture turns graphs off in the process, says why in status(),
// and runs eagerly. Backbone wraps its TorchScript engine on CUDA in it when TLC_CUDA_GRAPHS=1: opt-in until a
// GPU has run it (no CUDA line of tlc has run yet; docs/GPU.md).
std::shared_ptr<FrozenEngine> with_cuda_graphs(std::shared_ptr<FrozenEngine> inner);
// Whether this build has with_cuda_graphs and TLC_CUDA_GRAPHS=1 asks for it.
bool cuda_graphs_enabled();

// OpenVINO's CPU runtime on the module converted to OpenVINO IR for [N,3,size,size] input (any N). The
// conversion runs once per distinct backbone (keyed by its serialized bytes, OpenVINO's version and the size)
// through a child Python with torch and openvino (TLC_PYTHON, else the Python the build was made with), into
// engine_cache_dir(); later runs read the cached IR. Throws tlc::Error saying why when it cannot be made
// (no OpenVINO in the build, no such Python, a conversion failure); the caller falls back to TorchScript.
// prefix_blocks >= 0: only the first that many blocks (the frozen prefix while fine-tuning; the output is
// then whatever the last of them gives, e.g. an [N,C,h,w] activation).
// precision int8: the IR is quantized by NNCF (8-bit weights and activations), its activation ranges calibrated
// on `calibration`, normalized float32 [M,3,size,size] images like the ones it will see (the training images);
// the cache key holds them too. Without them it throws (the caller falls back).
std::unique_ptr<FrozenEngine> make_openvino_engine(torch::jit::Module module, int64_t size, const std::string& precision,
                                                   int threads, int64_t prefix_blocks = -1,
                                                   const at::Tensor& calibration = at::Tensor());

// How many images int8 calibrates on at most: NNCF's statistics need a few hundred, and each costs one float32
// forward pass during the (cached) conversion.
inline constexpr int64_t kCalibrationImages = 128;

// Where converted engines live: $TLC_ENGINE_CACHE, else $XDG_CACHE_HOME/tlc/engines, else
// ~/.cache/tlc/engines.
std::string engine_cache_dir();

}  // namespace tlc
