#pragma once
// One small training run, shared by the precision checks on the CPU (test_trainer.cpp) and on the GPU
// (test_gpu.cpp) so that both look at the same scenario.
#include <ATen/ATen.h>

#include <string>

#include "test_util.h"
#include "tlc/trainer.h"

namespace tlc_test {

// 3 classes x 12 images of 16 px, tiny_cnn, 3 epochs of Adam (lr 0.01, batch 8) on `device` in `precision`:
// the class probabilities of the first 6 images afterwards.
inline at::Tensor tiny_training_probabilities(const std::string& device, const std::string& precision) {
  TempDir t;
  make_dataset(t.path(), 3, 12, 16);
  auto folder = tlc::list_image_folder(t.str());
  tlc::DecodeOptions dopt;
  dopt.size = 16;
  tlc::ScanReport r;
  auto set = tlc::ImageSet::scan(folder.items, dopt, 0, 1 << 30, false, r);
  tlc::Preprocess pre;
  pre.image_size = 16;
  tlc::TrainOptions o;
  o.device = device;
  o.precision = precision;
  o.epochs = 3;
  o.batch_size = 8;
  o.optimizer.name = "adam";
  o.optimizer.lr = 0.01;
  tlc::TransferClassifier clf(tlc::Backbone::load(source("models/tiny_cnn.pt")), folder.classes, pre, o);
  clf.fit(set, nullptr);
  return clf.predict_proba(set.batch({0, 1, 2, 3, 4, 5}));
}

}  // namespace tlc_test
