#pragma once
// The trainable head on top of the frozen backbone: GAP features -> [Dense(hidden)+ReLU] -> [Dropout] ->
// Dense(K). Global average pooling itself happens on the backbone output (Backbone::pooled_features).
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <string>

namespace tlc {

struct HeadOptions {
  int64_t in_features = 0;
  int64_t num_classes = 0;
  int64_t hidden = 0;    // 0: no hidden layer
  double dropout = 0.0;  // applied before the last Dense layer, in training only
};

class HeadImpl : public torch::nn::Module {
 public:
  explicit HeadImpl(const HeadOptions& opt);
  at::Tensor forward(const at::Tensor& features);  // [N,C] -> logits [N,K]
  const HeadOptions& options() const { return opt_; }
  torch::nn::Linear hidden_fc{nullptr};
  torch::nn::Linear fc{nullptr};
  torch::nn::Dropout drop{nullptr};

 private:
  HeadOptions opt_;
};
TORCH_MODULE(Head);

struct OptimizerOptions {
  std::string name = "rmsprop";  // rmsprop | adam | sgd
  double lr = 1e-4;
  double momentum = 0.0;         // sgd and rmsprop
};

// Keras' defaults where they differ from PyTorch's (the seeds are Keras): RMSprop rho (alpha) 0.9, epsilon
// 1e-7 for RMSprop and Adam. Throws tlc::Error for an unknown name.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& opt,
                                                        std::vector<at::Tensor> params);

}  // namespace tlc
