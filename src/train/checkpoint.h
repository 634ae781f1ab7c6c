#pragma once
// The training checkpoint file (RUN/checkpoint.pt): where a phase stopped, its history, the trainable
// parameters, the best-epoch snapshot and the optimizer state. Internal to the trainer.
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tlc/trainer.h"

namespace tlc::detail {

struct CheckpointState {
  int phase = 0;  // 0: head, 1: fine-tune
  int epoch_index = 0;
  int64_t next_step = 0;
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  double best_loss = std::numeric_limits<double>::infinity();
  int since_best = 0;
  std::vector<EpochStats> history;
};

// Written atomically (temp file + rename), inside a CriticalWrite.
void write_checkpoint(const std::string& path, const CheckpointState& st, const std::vector<at::Tensor>& params,
                      const std::vector<at::Tensor>& best, torch::optim::Optimizer& optim);

// Reads the state; `archive` keeps the tensors for load_checkpoint_tensors. Throws tlc::Error naming the
// file when it cannot be read.
CheckpointState read_checkpoint(const std::string& path, std::shared_ptr<torch::serialize::InputArchive>& archive);

// Copies the saved parameters into `params`, fills `best` and loads the optimizer state.
void load_checkpoint_tensors(torch::serialize::InputArchive& archive, std::vector<at::Tensor>& params,
                             std::vector<at::Tensor>& best, torch::optim::Optimizer& optim, c10::Device device);

}  // namespace tlc::detail
