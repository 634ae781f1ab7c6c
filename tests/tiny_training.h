#pragma once
// One small training run, shared by the precision checks on the CPU (test_trainer.cpp) and on the GPU
// (test_gpu.cpp) so that both look at the same scenario.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <string>

#include "test_util.h"
#include "tlc/trainer.h"

namespace tlc_test {

// `classes` x `per_class` made-up images of `size` px (make_dataset's `seed`), split 75/25 (seed 1) and
// decoded into memory: the train and val sets the trainer tests start from.
struct DecodedSplit {
  TempDir dir;
  std::vector<std::string> classes;
  tlc::Split split;
  tlc::ImageSet train, val;
  DecodedSplit(int num_classes, int per_class, int size, unsigned seed) {
    classes = make_dataset(dir.path(), num_classes, per_class, size, seed);
    auto folder = tlc::list_image_folder(dir.str());
    split = tlc::split_stratified(folder.items, num_classes, 0.25, 0.0, 1);
    tlc::DecodeOptions dopt;
    dopt.size = size;
    tlc::ScanReport r;
    train = tlc::ImageSet::scan(split.train, dopt, 0, 1 << 30, false, r);
    val = tlc::ImageSet::scan(split.val, dopt, 0, 1 << 30, false, r);
  }
};

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

// A bf16 fine-tuning run through the CLI (`device_flags`, e.g. "--precision bf16" or "--device cuda"), then
// `tlc evaluate` of the model it saved (`evaluate_flags`): the test metrics the run wrote and the evaluation,
// which must agree when the frozen bf16 path runs the fine-tuned weights. Empty objects when a command failed
// (its output in `log`).
struct Bf16FinetuneCheck {
  nlohmann::json metrics, evaluation;
  std::string log;
};
inline Bf16FinetuneCheck bf16_finetune_then_evaluate(const std::string& device_flags, const std::string& evaluate_flags) {
  TempDir t;
  make_dataset(t.path() / "data", 3, 12, 16);
  Bf16FinetuneCheck c;
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"),
                                 "--image-size 16 --epochs 2 --optimizer adam --lr 0.01 " + device_flags +
                                     " --fine-tune-layers 2 --fine-tune-epochs 3 --fine-tune-lr 0.05 --val-split 0.2 --test-split 0.3"));
  c.log = r.out;
  if (r.exit_code != 0) return c;
  auto e = run_command(tlc_cmd("evaluate " + q(t.str("run/model.pt")) + " --json " + evaluate_flags));
  c.log += e.out;
  if (e.exit_code != 0) return c;
  c.metrics = nlohmann::json::parse(read_text(t.path() / "run" / "metrics.json"));
  c.evaluation = nlohmann::json::parse(e.out.substr(e.out.find('{')));
  return c;
}

}  // namespace tlc_test
