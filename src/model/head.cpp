#include <torch/optim/adam.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>

#include "tlc/classifier.h"
#include "tlc/error.h"
#include "tlc/text.h"

namespace tlc {

HeadImpl::HeadImpl(const HeadOptions& opt) : opt_(opt) {
  if (opt.in_features <= 0 || opt.num_classes < 2)
    throw Error("head needs >0 input features and >=2 classes (got " + std::to_string(opt.in_features) + ", " +
                std::to_string(opt.num_classes) + ")");
  if (opt.dropout < 0 || opt.dropout >= 1) throw Error("--dropout must be in [0, 1)");
  int64_t width = opt.in_features;
  if (opt.hidden > 0) {
    hidden_fc = register_module("hidden_fc", torch::nn::Linear(opt.in_features, opt.hidden));
    width = opt.hidden;
  }
  if (opt.dropout > 0) drop = register_module("drop", torch::nn::Dropout(opt.dropout));
  fc = register_module("fc", torch::nn::Linear(width, opt.num_classes));
}

at::Tensor HeadImpl::forward(const at::Tensor& features) {
  at::Tensor x = features;
  if (hidden_fc) x = torch::relu(hidden_fc->forward(x));
  if (drop) x = drop->forward(x);
  return fc->forward(x);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& opt, std::vector<at::Tensor> params) {
  if (!(opt.lr > 0)) throw Error("--lr must be > 0 (got " + format_number(opt.lr) + ")");
  if (opt.name == "rmsprop")
    return std::make_unique<torch::optim::RMSprop>(
        params, torch::optim::RMSpropOptions(opt.lr).alpha(0.9).eps(1e-7).momentum(opt.momentum));
  if (opt.name == "adam")
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(opt.lr).eps(1e-7));
  if (opt.name == "sgd")
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(opt.lr).momentum(opt.momentum));
  throw Error("unknown optimizer '" + opt.name + "'; choose rmsprop, adam or sgd");
}

}  // namespace tlc
