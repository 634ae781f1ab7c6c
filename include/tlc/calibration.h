#pragma once
// The images `--precision int8` calibrates on (tlc/engine.h: NNCF's post-training static quantization takes
// its activation ranges from them): a few hundred images like the ones the engine will see, the training
// images where there are any, normalized the way the backbone's input is.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "tlc/dataset.h"
#include "tlc/engine.h"
#include "tlc/image_io.h"
#include "tlc/image_set.h"
#include "tlc/normalize.h"

namespace tlc {

// Up to `max` of `n` items, spread evenly over them (a class-sorted listing gives every class its share).
std::vector<int64_t> calibration_indices(int64_t n, int64_t max = kCalibrationImages);

// The calibration batch of a decoded set: its images at calibration_indices, as float32 NCHW normalized by
// `spec`. Throws tlc::Error for an empty set.
at::Tensor calibration_batch(const ImageSet& set, const NormalizeSpec& spec);

// The same from files: up to kCalibrationImages of `items` (spread evenly) are decoded on `threads` threads;
// undecodable ones are skipped. `used` (optional) gets how many went in. Throws tlc::Error naming the first
// file when none decodes.
at::Tensor calibration_batch(const std::vector<ImageItem>& items, const DecodeOptions& opt, const NormalizeSpec& spec,
                             int threads, int64_t* used = nullptr);

}  // namespace tlc
