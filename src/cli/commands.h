#pragma once
// Each subcommand lives in its own file: an options struct, setup_x (flags and help) and run_x (calls the
// library and prints). run_x returns the process exit code.
#include <CLI/CLI.hpp>

#include <memory>

#include "tlc/labels.h"
#include "tlc/trainer.h"

namespace tlc::cli {

// setup_x registers the subcommand and arranges for *exit_code to be set by run_x when it is chosen.
void setup_train(CLI::App& app, int* exit_code);
void setup_predict(CLI::App& app, int* exit_code);
void setup_bench(CLI::App& app, int* exit_code);
void setup_inspect(CLI::App& app, int* exit_code);
void setup_finetune(CLI::App& app, int* exit_code);
void setup_evaluate(CLI::App& app, int* exit_code);
void setup_export(CLI::App& app, int* exit_code);
void setup_serve(CLI::App& app, int* exit_code);  // only in builds with cpp-httplib (TLC_WITH_SERVE)

// Flags shared by train and finetune (batch, optimizer, augmentation, caches, controls, device).
void add_training_flags(CLI::App* sub, TrainOptions& t);
// Joins the distributed world when torchrun or srun started this process (tlc/dist.h), with --dist-timeout.
void join_distributed_world(const TrainOptions& t);
// --labels / --label-regex (train, evaluate).
void add_label_flags(CLI::App* sub, LabelSource& labels);
// --resize override and --max-pixels for commands that read images for a saved model (predict, evaluate).
// --tta N and --tta-augment SPEC of predict and evaluate (test-time augmentation, tlc/model_file.h).
void add_tta_flags(CLI::App* sub, int& tta, std::string& tta_augment);
void add_model_input_flags(CLI::App* sub, std::string& resize, int64_t& max_pixels);
// --decode auto|cpu|gpu (train, finetune, predict, bench): where JPEGs are decoded (tlc/gpu_decode.h).
void add_decode_flag(CLI::App* sub, std::string& decode);
// --engine and --precision of the frozen backbone passes (tlc/engine.h).
void add_engine_flags(CLI::App* sub, std::string& engine, std::string& precision);
// --calibration DIR: the images --precision int8 calibrates on (tlc::calibrate_model).
void add_calibration_flag(CLI::App* sub, std::string& dir);

}  // namespace tlc::cli
