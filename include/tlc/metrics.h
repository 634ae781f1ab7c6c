#pragma once
// Classification metrics from predicted probabilities: loss, accuracy, top-k accuracy, the confusion
// matrix and per-class precision/recall/F1.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tlc {

struct Evaluation {
  int64_t count = 0;
  double loss = 0;       // mean cross-entropy of the probabilities
  double accuracy = 0;
  int top_k = 1;
  double top_k_accuracy = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
  std::vector<double> precision, recall, f1;    // per class; 0 where undefined (no predictions / no support)
  std::vector<int64_t> support;                 // true images per class
};

// probs: [N,K] float probabilities; labels: N true class indices.
Evaluation evaluate_probabilities(const at::Tensor& probs, const std::vector<int64_t>& labels, int top_k);

// The confusion matrix as an aligned text table (rows: true class, columns: predicted class).
std::string confusion_table(const Evaluation& e, const std::vector<std::string>& classes);

}  // namespace tlc
