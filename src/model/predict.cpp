// Prediction of files with a saved model, and the sentences tlc prints for it.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "tlc/dataset.h"
#include "tlc/image_io.h"
#include "tlc/prefetch.h"
#include "tlc/predict.h"
#include "tlc/util.h"

namespace fs = std::filesystem;

namespace tlc {

std::string format_percent(double p) {
  double pct = p * 100.0;
  char buf[32];
  // Whole percents read best ("97%"), but 99.6% must not print as a certain 100%, nor 0.4% as 0%.
  if (pct >= 1.0 && pct <= 99.0) std::snprintf(buf, sizeof buf, "%.0f%%", pct);
  else std::snprintf(buf, sizeof buf, "%.1f%%", pct);
  return buf;
}

std::string describe_prediction(const std::vector<float>& probs, const std::vector<std::string>& classes, int top_k) {
  std::vector<size_t> order(probs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return probs[a] > probs[b]; });
  if (probs.size() == 2)
    return "This image seems " + format_percent(probs[order[0]]) + " " + classes[order[0]] + ", and " +
           format_percent(probs[order[1]]) + " " + classes[order[1]] + ".";
  std::string s = "This image seems " + format_percent(probs[order[0]]) + " " + classes[order[0]];
  const size_t k = std::min<size_t>(std::max(top_k, 1), order.size());
  for (size_t i = 1; i < k; ++i)
    s += (i + 1 == k ? ", and " : ", ") + format_percent(probs[order[i]]) + " " + classes[order[i]];
  return s + ".";
}

std::string predicted_label(const std::vector<float>& probs, const std::vector<std::string>& classes,
                            double min_confidence) {
  if (probs.empty()) return kUnknownLabel;
  const size_t best = std::max_element(probs.begin(), probs.end()) - probs.begin();
  return probs[best] < min_confidence ? kUnknownLabel : classes.at(best);
}

DecodeOptions predict_decode_options(const ModelMeta& meta, int64_t max_pixels) {
  DecodeOptions dopt;
  dopt.size = static_cast<int>(meta.image_size);
  dopt.resize = meta.resize;
  dopt.max_pixels = max_pixels;
  return dopt;
}

std::string predictions_json(const std::vector<Prediction>& predictions, const std::vector<std::string>& classes,
                             int top_k, double min_confidence, int indent) {
  nlohmann::json out = nlohmann::json::array();
  for (const Prediction& p : predictions) {
    if (!p.ok) {
      out.push_back({{"path", p.path}, {"error", p.error}});
      continue;
    }
    std::vector<size_t> order(p.probabilities.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return p.probabilities[a] > p.probabilities[b]; });
    nlohmann::json top = nlohmann::json::array();
    for (size_t i = 0; i < order.size() && static_cast<int>(i) < std::max(1, top_k); ++i)
      top.push_back({{"class", classes[order[i]]}, {"probability", p.probabilities[order[i]]}});
    nlohmann::json probs = nlohmann::json::object();
    for (size_t i = 0; i < classes.size(); ++i) probs[classes[i]] = p.probabilities[i];
    out.push_back({{"path", p.path}, {"label", predicted_label(p.probabilities, classes, min_confidence)},
                   {"top", top}, {"probabilities", probs}});
  }
  return out.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<Prediction> predict_paths(ModelFile& model, const std::vector<std::string>& paths, int64_t batch_size,
                                      int threads, int64_t max_pixels, GpuDecoder* gpu) {
  // Folders are expanded with the same rule as training's class folders (hidden files skipped, image
  // extensions only, sorted); files named on the command line are taken as given, in that order.
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found = list_image_files(p);
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(p);
    }
  }
  std::vector<Prediction> out(files.size());
  const DecodeOptions dopt = predict_decode_options(model.meta(), max_pixels);
  batch_size = std::max<int64_t>(1, batch_size);
  const auto bs = static_cast<size_t>(batch_size);
  // Batch k+1 is decoded (into pinned memory for a GPU) while batch k is classified.
  std::vector<DecodeStatus> status;
  auto batches = prefetch_files(files, batch_size, dopt, threads, model.device(), status, gpu);
  const int64_t nbatches = batches->count();
  for (int64_t k = 0; k < nbatches; ++k) {
    at::Tensor pix = batches->next();  // the statuses of its images are written once this returns
    const size_t b0 = static_cast<size_t>(k) * bs, b1 = std::min(files.size(), b0 + bs);
    std::vector<int64_t> good;
    for (size_t i = b0; i < b1; ++i) {
      out[i].path = files[i];
      out[i].ok = status[i].ok;
      out[i].error = status[i].error;
      if (out[i].ok) good.push_back(static_cast<int64_t>(i - b0));
    }
    if (good.empty()) continue;
    if (good.size() < b1 - b0) pix = pix.index_select(0, at::tensor(good, at::kLong).to(pix.device()));
    at::Tensor probs = model.predict_proba(pix).contiguous();
    const int64_t K = probs.size(1);
    for (size_t g = 0; g < good.size(); ++g) {
      const float* row = probs.data_ptr<float>() + static_cast<int64_t>(g) * K;
      out[b0 + static_cast<size_t>(good[g])].probabilities.assign(row, row + K);
    }
  }
  return out;
}

}  // namespace tlc
