#include "tlc/device.h"

#include <ATen/Context.h>
#include <torch/cuda.h>

#include "tlc/error.h"

#include <regex>

namespace tlc {

c10::Device resolve_device(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
  if (name == "cuda") {
    if (!torch::cuda::is_available())
      throw Error("--device cuda was asked for but no CUDA device is visible; use --device cpu or auto");
    return c10::Device(c10::kCUDA);
  }
  throw Error("unknown device '" + name + "'; choose auto, cpu or cuda");
}

void allow_tf32(bool allow) {
  at::globalContext().setAllowTF32CuBLAS(allow);
  at::globalContext().setAllowTF32CuDNN(allow);
}

bool tf32_allowed() { return at::globalContext().allowTF32CuDNN() || at::globalContext().allowTF32CuBLAS(); }

std::string describe_gpu_oom(const std::string& torch_message) {
  // PyTorch's sentences: "Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 139.81 GiB of which
  // 1.19 GiB is free. Process 4242 has 120.00 GiB memory in use. Including non-PyTorch memory, this process
  // has 18.50 GiB memory in use. Of the allocated memory ..."
  std::string facts;
  auto add = [&](const std::string& s) { facts += (facts.empty() ? "" : "; ") + s; };
  std::smatch m;
  // Sizes: "2.00 GiB", "512.00 MiB", or "0 bytes" below a KiB.
  const std::string size = R"(([0-9.]+ (?:[KMGTP]iB|bytes)))";
  if (std::regex_search(torch_message, m, std::regex("Tried to allocate " + size)))
    add("it asked for " + m[1].str() + " more");
  if (std::regex_search(torch_message, m,
                        std::regex(R"(GPU (\d+) has a total capacity of )" + size + " of which " + size + " is free")))
    add("GPU " + m[1].str() + " has " + m[3].str() + " free of " + m[2].str());
  if (std::regex_search(torch_message, m, std::regex("this process has " + size + " memory in use")))
    add("tlc holds " + m[1].str());
  std::string others;
  const std::regex proc(R"(Process (\d+) has )" + size + " memory in use");
  for (auto it = std::sregex_iterator(torch_message.begin(), torch_message.end(), proc); it != std::sregex_iterator(); ++it)
    others += (others.empty() ? "" : ", ") + std::string("process ") + (*it)[1].str() + " holds " + (*it)[2].str();
  // In a container PyTorch may name tlc itself by a PID of another namespace: "processes", not "others".
  if (!others.empty()) add("processes on the GPU: " + others);
  return "out of GPU memory" + (facts.empty() ? std::string() : " (" + facts + ")") +
         ". Use a smaller --batch-size (or --image-size, or --cache-memory-mb), wait for the other jobs on the GPU "
         "(nvidia-smi lists them), or run with --device cpu; model files and checkpoints already written are intact";
}

}  // namespace tlc
