#pragma once
// Data-parallel runs across processes, GPUs and machines on torch.distributed (c10d). tlc has no launcher of
// its own: started by torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or by
// Slurm's srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID with MASTER_ADDR/MASTER_PORT exported), each process
// joins one process group: Gloo on the CPU, NCCL on CUDA (rank r on cuda:LOCAL_RANK).
//
// A single process is a world of one in which every collective returns its input, so the training code has
// one path. Collectives must be called by every rank in the same order with tensors of the same shape (the
// row counts given to allgather_rows may differ). A rank that dies or stops answering makes the collective
// of the others throw RankLost naming it, within the timeout, instead of hanging.
#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tlc/error.h"

namespace tlc {

// Where this process stands in a distributed launch, read from the environment.
struct DistLaunch {
  bool launched = false;   // torchrun's variables, or an srun of more than one task
  std::string launcher;    // "torchrun" (also: any launcher setting RANK/WORLD_SIZE) | "slurm"
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE=True: torchrun's agent hosts the store
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT: keys of a restarted attempt stay apart

  // Throws tlc::Error naming a variable that is missing or malformed (e.g. srun without MASTER_ADDR).
  static DistLaunch from_environment();
};

// A rank stopped answering during a collective (killed, crashed, hung, or its machine unreachable).
class RankLost : public Error {
 public:
  using Error::Error;
};

class Comm {
 public:
  Comm();  // a world of one
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  // Joins the process group of `launch`: connects to the store (hosted by rank 0, or by torchrun's agent),
  // then builds the backend: "gloo" (CPU tensors) or "nccl" (CUDA tensors on cuda:local_rank). `timeout`
  // bounds the rendezvous and every collective. Throws tlc::Error when the store cannot be reached in time.
  static std::shared_ptr<Comm> join(const DistLaunch& launch, const std::string& backend, std::chrono::seconds timeout);

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  int local_rank() const { return local_rank_; }
  int local_world_size() const { return local_world_; }
  bool is_root() const { return rank_ == 0; }
  // A process group was joined (torchrun with one process joins one too: NCCL's path runs).
  bool joined() const { return impl_ != nullptr; }
  std::string backend() const;  // "none" | "gloo" | "nccl"
  // Seconds spent in collectives so far (the communication share of a step, for the benchmarks).
  double seconds_in_collectives() const { return comm_seconds_; }

  // Element-wise sum over the ranks, in place (any device: copied to the backend's device and back).
  void allreduce_sum(at::Tensor& t);
  // The ranks' tensors concatenated along dim 0 in rank order; their row counts may differ, the other
  // dimensions and the dtype must agree.
  at::Tensor allgather_rows(const at::Tensor& local);
  // Every rank's string, in rank order.
  std::vector<std::string> allgather_bytes(const std::string& mine);
  // Root's tensor to every rank, in place.
  void broadcast(at::Tensor& t, int root = 0);
  void barrier();
  // True on every rank when `v` is true on every rank.
  bool all_true(bool v);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_ = 1, local_rank_ = 0, local_world_ = 1;
  double comm_seconds_ = 0;
  template <typename Fn>
  auto guarded(const char* what, Fn&& fn) -> decltype(fn());
};

// The process's world: what the CLI joined from the environment (join_world_from_environment), else a
// world of one. Library users may set their own.
Comm& world();
void set_world(std::shared_ptr<Comm> comm);
// Joins the world when the environment says this is a distributed launch (see DistLaunch); `device` is the
// run's --device (auto | cpu | cuda), which picks NCCL or Gloo. Does nothing otherwise.
void join_world_from_environment(const std::string& device, std::chrono::seconds timeout);
// "rank 1: " in a world of more than one process, else "" (the prefix of a rank's error messages).
std::string rank_prefix();

inline constexpr int kDefaultDistTimeoutSeconds = 1800;  // torch.distributed's default for Gloo and NCCL

}  // namespace tlc
