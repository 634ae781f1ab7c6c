// The command line: help, parsing, and bad input giving a one-line error and a non-zero exit.
#include <map>
#include <nlohmann/json.hpp>

#include <set>

#include "test_util.h"
#include "tlc/engine.h"

using namespace tlc_test;

namespace {

// The error output is exactly one line starting with "tlc: error:" and containing `needle`.
void expect_one_line_error(const CommandResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("tlc: error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
}

}  // namespace

TEST(Cli, HelpListsCommandsAndEveryTrainFlagWithDefaults) {
  auto r = run_command(tlc_cmd("--help"));
  EXPECT_EQ(r.exit_code, 0);
  for (auto cmd : {"train", "predict", "inspect", "bench"}) EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
  auto t = run_command(tlc_cmd("train --help"));
  EXPECT_EQ(t.exit_code, 0);
  for (auto flag : {"--backbone", "--out", "--val-split", "--test-split", "--val-dir", "--test-dir", "--seed",
                    "--image-size", "--normalize", "--epochs", "--batch-size", "--optimizer", "--lr", "--hidden",
                    "--dropout", "--strict", "--device", "--threads", "--max-pixels"})
    EXPECT_NE(t.out.find(flag), std::string::npos) << flag;
  EXPECT_NE(t.out.find("rmsprop"), std::string::npos);   // default optimizer shown
  EXPECT_NE(t.out.find("0.0001"), std::string::npos);    // default learning rate shown
  EXPECT_NE(t.out.find("160"), std::string::npos);       // default image size shown
}

TEST(Cli, EverySubcommandDocumentsItsFlags) {
  const std::map<std::string, std::vector<std::string>> flags = {
      {"predict", {"--json", "--csv", "--top-k", "--batch-size", "--threads", "--device"}},
      {"evaluate", {"--out", "--top-k", "--batch-size", "--threads", "--device"}},
      {"finetune", {"--fine-tune-layers", "--fine-tune-epochs", "--device", "--precision"}},
      {"inspect", {"--image-size"}},
      {"bench", {"--backbone", "--images", "--count", "--batch-size", "--image-size", "--iterations", "--threads",
                 "--device", "--precision", "--json"}}};
  for (const auto& [cmd, want] : flags) {
    auto r = run_command(tlc_cmd(cmd + " --help"));
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.out;
    for (const auto& f : want) EXPECT_NE(r.out.find(f), std::string::npos) << cmd << " --help lacks " << f;
  }
}

TEST(Cli, AskingForCudaWithoutOneIsAClearError) {
  // The GPU is hidden from the commands (CUDA_VISIBLE_DEVICES empty), so this runs on GPU machines too.
  const std::string no_gpu = "CUDA_VISIBLE_DEVICES= ";
  TempDir t;
  make_dataset(t.path() / "data", 2, 4, 16);
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"),
                                 "--image-size 16 --epochs 1 --device cpu --no-progress"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const std::string cmd : {tlc_cmd("predict " + q(t.str("run/model.pt")) + " " + q(t.str("data")) + " --device cuda"),
                                tlc_cmd("evaluate " + q(t.str("run/model.pt")) + " " + q(t.str("data")) + " --device cuda"),
                                train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run2"), "--device cuda")})
    expect_one_line_error(run_command(no_gpu + cmd), "--device cpu");
}

TEST(Cli, ParseErrorsAreRejected) {
  EXPECT_NE(run_command(tlc_cmd("train")).exit_code, 0);
  EXPECT_NE(run_command(tlc_cmd("train data --backbone x.pt --val-split 2")).exit_code, 0);
  EXPECT_NE(run_command(tlc_cmd("train data --backbone x.pt --optimizer lbfgs")).exit_code, 0);
  EXPECT_NE(run_command(tlc_cmd("train data --backbone x.pt --normalize zscore")).exit_code, 0);
  EXPECT_NE(run_command(tlc_cmd("frobnicate")).exit_code, 0);
  EXPECT_NE(run_command(tlc_cmd("predict model.pt")).exit_code, 0);
}

TEST(Cli, MissingDataFolder) {
  TempDir t;
  expect_one_line_error(run_command(tlc_cmd("train '" + t.str("nope") + "' --backbone '" + source("models/tiny_cnn.pt") + "'")),
                        "does not exist");
}

TEST(Cli, FolderWithoutClassSubfolders) {
  TempDir t;
  cv::imwrite(t.str("a.png"), class_image(0, 8, 1));
  expect_one_line_error(run_command(tlc_cmd("train '" + t.str() + "' --backbone '" + source("models/tiny_cnn.pt") + "'")),
                        "no class sub-folders");
}

TEST(Cli, OneClassOnly) {
  TempDir t;
  make_dataset(t.path(), 1, 3, 8);
  expect_one_line_error(run_command(tlc_cmd("train '" + t.str() + "' --backbone '" + source("models/tiny_cnn.pt") + "'")),
                        "at least 2");
}

TEST(Cli, NonTorchScriptBackbone) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 3, 8);
  write_text(t.path() / "weights.pt", "not a model");
  expect_one_line_error(run_command(tlc_cmd("train '" + t.str("data") + "' --backbone '" + t.str("weights.pt") + "'")),
                        "not a TorchScript file");
  expect_one_line_error(run_command(tlc_cmd("train '" + t.str("data") + "' --backbone '" + t.str("missing.pt") + "'")),
                        "export_backbone.py");
}

TEST(Cli, PredictMissingImageAndMissingModel) {
  TempDir t;
  expect_one_line_error(run_command(tlc_cmd("predict '" + t.str("model.pt") + "' x.png")), "not found");
  // A real model and a missing image.
  make_dataset(t.path() / "data", 2, 5, 16);
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"), "--image-size 16 --epochs 1"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_one_line_error(run_command(tlc_cmd("predict '" + t.str("run/model.pt") + "' '" + t.str("missing.png") + "'")),
                        "missing.png");
}

TEST(Cli, BenchPrintsEveryFigureAsJson) {
  auto r = run_command(tlc_cmd("bench --count 4 --iterations 1 --batch-size 2 --image-size 16 --json --backbone '" +
                           source("models/tiny_cnn.pt") + "' 2>/dev/null"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  std::set<std::string> names;
  for (auto& f : j) {
    names.insert(f["name"].get<std::string>());
    EXPECT_GT(f["value"].get<double>(), 0.0) << f.dump();
    EXPECT_TRUE(f.contains("unit") && f.contains("detail"));
  }
  // The peers: the same file on PyTorch and on OpenVINO's defaults, in the same run, with tlc's ratio.
  std::set<std::string> want{"decode_resize", "decode_full", "normalize", "normalize_bf16_cl", "backbone", "peer_torch_fp32"};
  if (tlc::openvino_available()) want.insert("peer_openvino");
  EXPECT_EQ(names, want);
  for (auto& f : j)
    if (f["name"].get<std::string>().rfind("peer_", 0) == 0)
      EXPECT_NE(f["detail"].get<std::string>().find("; tlc is "), std::string::npos) << f.dump();
  auto quiet = run_command(tlc_cmd("bench --count 4 --iterations 1 --batch-size 2 --image-size 16 --json --no-peers "
                                   "--backbone '" + source("models/tiny_cnn.pt") + "' 2>/dev/null"));
  ASSERT_EQ(quiet.exit_code, 0) << quiet.out;
  EXPECT_EQ(quiet.out.find("peer_"), std::string::npos) << quiet.out;
}

TEST(Cli, BenchFirstPassFromFilesOnDisk) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 5, 24);
  auto r = run_command(tlc_cmd("bench --count 7 --iterations 1 --batch-size 3 --image-size 16 --json --images '" +
                               t.str("data") + "' --backbone '" + source("models/tiny_cnn.pt") + "' 2>/dev/null"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  bool found = false;
  for (auto& f : nlohmann::json::parse(r.out)) {
    if (f["name"] != "first_pass") continue;
    found = true;
    EXPECT_GT(f["value"].get<double>(), 0.0);
    EXPECT_NE(f["detail"].get<std::string>().find("7 files"), std::string::npos) << f.dump();  // --count is kept
  }
  EXPECT_TRUE(found) << r.out;
}

// Flags whose value lives in a helper object must outlive the parse: --class-weights auto once wrote into a
// freed string and the program crashed at exit (status 139) after a successful run.
TEST(Cli, ClassWeightsAutoRunsAndExitsCleanly) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  for (const char* cmd : {"train", "finetune"}) {
    std::string line = std::string(cmd) == "train"
                           ? train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"),
                                       "--image-size 16 --epochs 1 --class-weights auto --no-progress")
                           : tlc_cmd("finetune " + q(t.str("run")) + " --fine-tune-layers 1 --fine-tune-epochs 1 "
                                     "--class-weights auto --no-progress");
    auto r = run_command(line);
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.out;
  }
}
