// The engine choice (what runs the frozen passes, at which precision, and why) and the CPU facts it reads.
#include "tlc/engine.h"

#include <ATen/cpu/Utils.h>

#include <cstdlib>
#include <filesystem>

#include "tlc/error.h"

namespace tlc {

std::string CpuFeatures::describe() const {
  std::string s;
  auto add = [&](bool on, const char* n) {
    if (on) s += (s.empty() ? "" : " ") + std::string(n);
  };
  add(avx2, "AVX2");
  add(avx512, "AVX512F");
  add(avx_vnni, "AVX-VNNI");
  add(avx512_vnni, "AVX512-VNNI");
  add(avx512_bf16, "AVX512-BF16");
  add(amx_bf16, "AMX-BF16");
  add(amx_int8, "AMX-INT8");
  return s.empty() ? "no AVX2" : s;
}

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  // cpuinfo through ATen: the same reading oneDNN and PyTorch's kernels dispatch on. Keys are cpuinfo's
  // feature names; a key this torch does not report stays false.
  const auto caps = at::cpu::get_cpu_capabilities();
  auto flag = [&](std::initializer_list<const char*> names) {
    for (const char* n : names) {
      auto it = caps.find(n);
      if (it != caps.end() && it->second.isBool() && it->second.toBool()) return true;
    }
    return false;
  };
  f.avx2 = flag({"avx2"});
  f.avx512 = flag({"avx512_f", "avx512f"});
  f.avx512_vnni = flag({"avx512vnni", "avx512_vnni"});
  f.avx_vnni = flag({"avx_vnni", "avxvnni"});
  f.avx512_bf16 = flag({"avx512bf16", "avx512_bf16"});
  f.amx_bf16 = flag({"amx_bf16", "amxbf16"});
  f.amx_int8 = flag({"amx_int8", "amxint8"});
  // AMX needs the kernel's permission for the tile state; without it the instructions fault, so a CPU whose
  // kernel refuses counts as having no AMX.
  if (f.amx_bf16 || f.amx_int8) {
    if (!at::cpu::init_amx()) f.amx_bf16 = f.amx_int8 = false;
  }
  auto name = caps.find("cpu_name");
  if (name != caps.end() && name->second.isString()) f.name = name->second.toStringRef();
  return f;
}

EngineRequest engine_request(const std::string& engine, const std::string& precision, const c10::Device& device) {
  static const CpuFeatures cpu = detect_cpu_features();
  EngineRequest r;
  r.engine = engine;
  r.precision = precision;
  r.cuda = device.is_cuda();
  r.cpu = cpu;
  r.openvino_built = openvino_available();
  return r;
}

EngineChoice choose_engine(const EngineRequest& r) {
  if (r.engine != "auto" && r.engine != "torchscript" && r.engine != "openvino")
    throw Error("--engine must be auto, torchscript or openvino (got '" + r.engine + "')");
  if (r.precision != "auto" && r.precision != "fp32" && r.precision != "tf32" && r.precision != "bf16" &&
      r.precision != "int8")
    throw Error("--precision must be auto, fp32, tf32, bf16 or int8 (got '" + r.precision + "')");
  EngineChoice c;
  if (r.precision == "int8") {
    if (r.cuda)
      throw Error("--precision int8 runs on the CPU (OpenVINO's int8 kernels); use --device cpu, or bf16 on CUDA");
    if (r.engine == "torchscript")
      throw Error("--precision int8 runs on the OpenVINO engine; drop --engine torchscript (or use --precision fp32/bf16)");
    if (!r.openvino_built)
      throw Error("--precision int8 needs OpenVINO, and this build of tlc has no OpenVINO (scripts/setup.sh installs the "
                  "openvino wheel; rebuild with scripts/build.sh), or use --precision fp32/bf16");
    c.engine = "openvino";
    c.precision = "int8";
    c.reason = "--precision int8: post-training static quantization (NNCF); ";
    if (r.cpu.has_int8())
      c.reason += std::string("the CPU has ") + (r.cpu.amx_int8 ? "AMX-INT8" : r.cpu.avx512_vnni ? "AVX512-VNNI" : "AVX-VNNI");
    else
      c.reason += "this CPU has " + r.cpu.describe() + " but no AMX-INT8 or VNNI, so int8 gains less";
    return c;
  }
  if (r.cuda) {
    if (r.engine == "openvino")
      throw Error("--engine openvino runs on the CPU only; use --device cpu, or --engine torchscript (or auto) on CUDA");
    c.engine = "torchscript";
    c.precision = r.precision == "auto" ? "bf16" : r.precision;
    c.reason = r.precision == "auto" ? "auto on CUDA: bf16 channels-last" : "--precision " + r.precision;
    return c;
  }
  const std::string feats = r.cpu.describe();
  if (r.precision == "auto") {
    if (r.cpu.has_bf16()) {
      c.precision = "bf16";
      c.reason = std::string("auto: the CPU has ") + (r.cpu.amx_bf16 ? "AMX-BF16" : "AVX512-BF16");
    } else {
      c.precision = "fp32";
      c.reason = "auto: the CPU has " + feats + " but neither AMX-BF16 nor AVX512-BF16 (bf16 would be emulated, slower "
                 "than fp32)";
    }
  } else if (r.precision == "tf32") {
    c.precision = "fp32";  // TF32 is a CUDA tensor-core mode; on the CPU it is plain fp32
    c.reason = "--precision tf32 is fp32 on the CPU";
  } else {
    c.precision = r.precision;
    c.reason = "--precision " + r.precision;
    if (r.precision == "bf16" && !r.cpu.has_bf16())
      c.reason += " (this CPU has " + feats + ", no bf16 hardware: emulated, expect it slower than fp32)";
  }
  if (r.engine == "torchscript") {
    c.engine = "torchscript";
    c.reason += "; --engine torchscript";
  } else if (!r.openvino_built) {
    if (r.engine == "openvino")
      throw Error("--engine openvino: this build of tlc has no OpenVINO (scripts/setup.sh installs the openvino wheel; "
                  "rebuild with scripts/build.sh), or use --engine torchscript");
    c.engine = "torchscript";
    c.reason += "; this build has no OpenVINO";
  } else if (c.precision == "bf16" && !r.cpu.has_bf16()) {
    // OpenVINO's CPU plugin runs bf16 only on bf16 hardware: the explicit request is honoured by TorchScript.
    c.engine = "torchscript";
    c.reason += "; OpenVINO has no bf16 on this CPU";
  } else {
    c.engine = "openvino";
    if (r.engine == "auto") c.reason += "; OpenVINO " + openvino_version() + " is built in";
  }
  return c;
}

std::string engine_cache_dir() {
  namespace fs = std::filesystem;
  if (const char* p = std::getenv("TLC_ENGINE_CACHE"); p && *p) return p;
  if (const char* p = std::getenv("XDG_CACHE_HOME"); p && *p) return (fs::path(p) / "tlc" / "engines").string();
  if (const char* p = std::getenv("HOME"); p && *p) return (fs::path(p) / ".cache" / "tlc" / "engines").string();
  return (fs::temp_directory_path() / "tlc-engines").string();
}

}  // namespace tlc
