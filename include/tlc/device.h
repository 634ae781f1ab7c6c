#pragma once
// Which device a run uses and how CUDA does its float32 math. Every path that runs a model (training,
// the saved model file in predict/evaluate, bench) goes through these, so one rule holds everywhere.
#include <c10/core/Device.h>

#include <string>

namespace tlc {

// Resolves "auto" to cuda when a CUDA device is present, else cpu; throws tlc::Error for cuda without one.
c10::Device resolve_device(const std::string& name);

// Whether float32 matmuls and convolutions on CUDA may use TF32 (process-wide switches). PyTorch lets cuDNN
// use TF32 by default; tlc's fp32 means fp32, so every CUDA path sets this explicitly.
void allow_tf32(bool allow);
bool tf32_allowed();

// The message for a GPU out-of-memory error, from PyTorch's (c10::OutOfMemoryError::what): what the run asked
// for, the device's total and free memory, the processes holding it (PyTorch names them through NVML), and
// the way out. Sentences PyTorch did not write are left out, never guessed.
std::string describe_gpu_oom(const std::string& torch_message);

}  // namespace tlc
