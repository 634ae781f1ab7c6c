// The head and its training: shapes, optimizers, learning on separable features.
#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>

#include "test_util.h"
#include "tlc/classifier.h"
#include "tlc/error.h"

TEST(Head, ShapesWithAndWithoutHiddenLayer) {
  tlc::Head plain(tlc::HeadOptions{16, 3, 0, 0.0});
  EXPECT_EQ(plain->forward(at::randn({5, 16})).sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_FALSE(plain->hidden_fc);
  tlc::Head deep(tlc::HeadOptions{16, 4, 8, 0.5});
  EXPECT_EQ(deep->forward(at::randn({2, 16})).sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(deep->hidden_fc->weight.sizes(), (std::vector<int64_t>{8, 16}));
  // Dropout only acts in training mode: eval output is deterministic.
  deep->eval();
  auto x = at::randn({2, 16});
  EXPECT_TRUE(at::equal(deep->forward(x), deep->forward(x)));
  EXPECT_THROW(tlc::Head(tlc::HeadOptions{16, 1, 0, 0.0}), tlc::Error);
}

TEST(Head, EveryOptimizerLearnsSeparableFeatures) {
  for (std::string name : {"rmsprop", "adam", "sgd"}) {
    at::manual_seed(0);
    // Two Gaussian blobs in 8-D.
    auto y = at::cat({at::zeros({64}, at::kLong), at::ones({64}, at::kLong)});
    auto x = at::randn({128, 8}) * 0.5 + y.unsqueeze(1).to(at::kFloat) * 2.0 - 1.0;
    tlc::Head head(tlc::HeadOptions{8, 2, 0, 0.0});
    tlc::OptimizerOptions oo;
    oo.name = name;
    oo.lr = name == "sgd" ? 0.5 : 0.05;
    auto opt = tlc::make_optimizer(oo, head->parameters());
    double first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
      opt->zero_grad();
      auto loss = torch::nn::functional::cross_entropy(head->forward(x), y);
      loss.backward();
      opt->step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_LT(last, first * 0.5) << name;
    auto acc = head->forward(x).argmax(1).eq(y).to(at::kFloat).mean().item<double>();
    EXPECT_GT(acc, 0.95) << name;
  }
  EXPECT_THROW(tlc::make_optimizer(tlc::OptimizerOptions{"lbfgs", 0.1, 0}, {}), tlc::Error);
}
