// Flags that several subcommands take, defined once so that they read the same in every --help.
#include "commands.h"
#include "tlc/augment.h"
#include "tlc/error.h"

namespace tlc::cli {

void add_label_flags(CLI::App* sub, LabelSource& labels) {
  auto* csv = sub->add_option("--labels", labels.csv,
                              "CSV of path,label rows labelling DATA_DIR's images instead of class sub-folders "
                              "(relative paths are relative to DATA_DIR; a header row is skipped)")
                  ->check(CLI::ExistingFile);
  sub->add_option("--label-regex", labels.regex,
                  "Take each image's class from its file name: the first capture group of this regular expression "
                  "(e.g. '^([a-z]+)\\.' for Kaggle's cat.0.jpg); files that do not match are skipped and listed")
      ->excludes(csv);
}

void add_tta_flags(CLI::App* sub, int& tta, std::string& tta_augment) {
  sub->add_option("--tta", tta,
                  "Test-time augmentation: also classify N augmented views of each image and report 0.25 x the plain "
                  "prediction + 0.75 x the mean of the augmented ones (fastai's blend). Views are drawn from each "
                  "image's pixels, so a result does not depend on the batch or order. 0: off")
      ->capture_default_str()->check(CLI::Range(0, 64));
  sub->add_option("--tta-augment", tta_augment,
                  "The transforms of --tta's views, in --augment's syntax (default: the augmentation the model was "
                  "trained with, else flip)")
      ->check(CLI::Validator(
          [](std::string& s) {
            try {
              parse_augment(s);
              return std::string();
            } catch (const Error& e) {
              return std::string(e.what());
            }
          },
          "SPEC"));
}

void add_model_input_flags(CLI::App* sub, std::string& resize, int64_t& max_pixels) {
  sub->add_option("--resize", resize,
                  "Override how images become the model's size: stretch, crop or pad (default: as the model was "
                  "trained, recorded in model.pt)")
      ->check(CLI::IsMember({"stretch", "crop", "pad"}));
  sub->add_option("--max-pixels", max_pixels, "Skip images with more pixels than this (decompression bombs)")
      ->capture_default_str()->check(CLI::PositiveNumber);
}

void add_decode_flag(CLI::App* sub, std::string& decode) {
  sub->add_option("--decode", decode,
                  "Where JPEGs are decoded and resized: auto (on the GPU with nvJPEG when the device is CUDA and "
                  "this build has it, else the CPU), cpu or gpu; files the GPU decoder does not take (progressive, "
                  "grayscale, CMYK, EXIF-rotated, other formats) are decoded on the CPU either way")
      ->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "gpu"}));
}

void add_engine_flags(CLI::App* sub, std::string& engine, std::string& precision) {
  sub->add_option("--engine", engine,
                  "What runs the frozen backbone passes (features, the first pass, evaluate, predict, bench): auto "
                  "(OpenVINO on the CPU when this build has it, TorchScript on CUDA), torchscript (the reference) "
                  "or openvino; a compiled engine is converted once per backbone into ~/.cache/tlc/engines "
                  "($TLC_ENGINE_CACHE), and when it cannot be made TorchScript runs and the log says why")
      ->capture_default_str()->check(CLI::IsMember({"auto", "torchscript", "openvino"}));
  sub->add_option("--precision", precision,
                  "Frozen backbone passes: auto (bf16 on CUDA and on CPUs with AMX-BF16 or AVX512-BF16, else "
                  "fp32), fp32, tf32 (CUDA), bf16, or int8 (CPU, OpenVINO: post-training static quantization "
                  "calibrated on up to 128 training images; `tlc evaluate --precision int8` prints what it costs "
                  "against fp32); the head, the optimizer and fine-tuned layers stay fp32")
      ->capture_default_str()->check(CLI::IsMember({"auto", "fp32", "tf32", "bf16", "int8"}));
}

void add_calibration_flag(CLI::App* sub, std::string& dir) {
  sub->add_option("--calibration", dir,
                  "With --precision int8: a folder of images like the ones the model will see, to calibrate on "
                  "(up to 128, spread evenly; default: the training images of the run the model belongs to)")
      ->check(CLI::ExistingDirectory);
}

}  // namespace tlc::cli
