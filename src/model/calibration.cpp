// The int8 calibration images: picked evenly, decoded like training decodes them, normalized like the input.
#include "tlc/calibration.h"

#include "tlc/error.h"

namespace tlc {

std::vector<int64_t> calibration_indices(int64_t n, int64_t max) {
  std::vector<int64_t> idx;
  const int64_t k = std::min(n, max);
  for (int64_t i = 0; i < k; ++i) idx.push_back(i * n / k);
  return idx;
}

at::Tensor calibration_batch(const ImageSet& set, const NormalizeSpec& spec) {
  if (set.size() == 0) throw Error("int8 calibration needs at least one image, and the set is empty");
  return normalize(set.batch(calibration_indices(set.size())), spec, at::kFloat, Layout::nchw);
}

at::Tensor calibration_batch(const std::vector<ImageItem>& items, const DecodeOptions& opt, const NormalizeSpec& spec,
                             int threads, int64_t* used) {
  std::vector<ImageItem> picked;
  for (int64_t i : calibration_indices(static_cast<int64_t>(items.size()))) picked.push_back(items[i]);
  ScanReport report;
  const int64_t bytes = static_cast<int64_t>(picked.size()) * opt.size * opt.size * 3;
  ImageSet set = ImageSet::scan(picked, opt, threads, bytes + 1, /*strict=*/false, report);
  if (set.size() == 0)
    throw Error("int8 calibration: none of the " + std::to_string(picked.size()) + " image(s) picked could be decoded" +
                (report.broken.empty() ? std::string() : " (first: " + report.broken[0].path + ": " + report.broken[0].reason + ")") +
                "; give images the model will see (--calibration DIR)");
  if (used) *used = set.size();
  return calibration_batch(set, spec);
}

}  // namespace tlc
