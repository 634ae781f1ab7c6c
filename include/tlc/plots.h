#pragma once
// Pictures a user looks at, drawn with OpenCV (no plotting dependency): training curves, the confusion
// matrix, and a contact sheet of predictions. Each writes a PNG atomically.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "tlc/metrics.h"
#include "tlc/trainer.h"

namespace tlc {

constexpr int kCurvesWidth = 1000, kCurvesHeight = 420;

// Two panels (accuracy, loss) with train and validation per epoch, labelled axes and a legend; a dashed
// vertical line marks where fine-tuning starts.
void plot_curves(const std::vector<EpochStats>& history, const std::string& path);

// The confusion matrix as a heat map with counts, class names on both axes.
void plot_confusion(const Evaluation& e, const std::vector<std::string>& classes, const std::string& path);

// A grid of images (uint8 [N,S,S,3] RGB) with a caption of up to two lines under each (split at '\n').
void write_contact_sheet(const at::Tensor& images_u8, const std::vector<std::string>& captions, const std::string& path);

}  // namespace tlc
