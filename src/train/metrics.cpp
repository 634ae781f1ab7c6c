#include "tlc/metrics.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "tlc/error.h"

namespace tlc {

Evaluation evaluate_probabilities(const at::Tensor& probs_in, const std::vector<int64_t>& labels, int top_k) {
  at::Tensor probs = probs_in.to(at::kCPU, at::kFloat).contiguous();
  if (probs.dim() != 2 || probs.size(0) != static_cast<int64_t>(labels.size()))
    throw Error("evaluate: expected [N,K] probabilities for " + std::to_string(labels.size()) + " labels");
  const int64_t n = probs.size(0), K = probs.size(1);
  Evaluation e;
  e.count = n;
  e.top_k = static_cast<int>(std::min<int64_t>(std::max(1, top_k), K));
  e.confusion.assign(K, std::vector<int64_t>(K, 0));
  e.support.assign(K, 0);
  int64_t correct = 0, in_top = 0;
  double loss = 0;
  auto a = probs.accessor<float, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = labels[i];
    if (y < 0 || y >= K) throw Error("evaluate: label " + std::to_string(y) + " out of range");
    int64_t pred = 0;
    for (int64_t c = 1; c < K; ++c)
      if (a[i][c] > a[i][pred]) pred = c;
    int64_t rank = 0;  // classes ranked strictly above the true one
    for (int64_t c = 0; c < K; ++c) rank += a[i][c] > a[i][y];
    ++e.confusion[y][pred];
    ++e.support[y];
    correct += pred == y;
    in_top += rank < e.top_k;
    loss -= std::log(std::max(1e-12, static_cast<double>(a[i][y])));
  }
  if (n > 0) {
    e.loss = loss / n;
    e.accuracy = static_cast<double>(correct) / n;
    e.top_k_accuracy = static_cast<double>(in_top) / n;
  }
  for (int64_t c = 0; c < K; ++c) {
    int64_t predicted = 0;
    for (int64_t t = 0; t < K; ++t) predicted += e.confusion[t][c];
    const double tp = static_cast<double>(e.confusion[c][c]);
    const double p = predicted ? tp / predicted : 0.0, r = e.support[c] ? tp / e.support[c] : 0.0;
    e.precision.push_back(p);
    e.recall.push_back(r);
    e.f1.push_back(p + r > 0 ? 2 * p * r / (p + r) : 0.0);
  }
  return e;
}

std::string confusion_table(const Evaluation& e, const std::vector<std::string>& classes) {
  size_t w = 6;
  for (const auto& c : classes) w = std::max(w, c.size() + 1);
  for (const auto& row : e.confusion)
    for (auto v : row) w = std::max(w, std::to_string(v).size() + 1);
  std::ostringstream o;
  o << std::left << std::setw(static_cast<int>(w)) << "true\\pred";
  for (const auto& c : classes) o << std::right << std::setw(static_cast<int>(w)) << c;
  o << "\n";
  for (size_t t = 0; t < classes.size(); ++t) {
    o << std::left << std::setw(static_cast<int>(w)) << classes[t];
    for (size_t p = 0; p < classes.size(); ++p) o << std::right << std::setw(static_cast<int>(w)) << e.confusion[t][p];
    o << "\n";
  }
  return o.str();
}

}  // namespace tlc
