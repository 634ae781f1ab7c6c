#pragma once
// The NCCL backend's factory: src/dist/nccl.cpp in a CUDA build (it needs CUDA's and NCCL's headers), an
// error naming the way out otherwise. Internal to src/dist.
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

namespace tlc::detail {

// Selects cuda:`device_index` for this process and returns its NCCL process group.
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                   std::chrono::milliseconds timeout, int device_index);

}  // namespace tlc::detail
