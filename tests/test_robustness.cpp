// Robustness: interruptions and resume, training faults, bad images and folders, model-file mix-ups.
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include "test_util.h"

using namespace tlc_test;
using json = nlohmann::json;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

std::string train_args(const TempDir& t, const std::string& run) {
  return "train " + q(t.str("data")) + " --backbone " + q(source("models/tiny_cnn.pt")) + " --out " + q(t.str(run)) +
         " --image-size 16 --batch-size 8 --epochs 4 --fine-tune-layers 1 --fine-tune-epochs 2 --fine-tune-lr 0.002"
         " --optimizer adam --lr 0.01 --dropout 0.2 --augment flip --seed 11";
}

json predict_json(const std::string& model, const std::string& img) {
  auto r = run_command(tlc_cmd("predict " + q(model) + " " + q(img) + " --json 2>/dev/null"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return json::parse(r.out);
}

}  // namespace

TEST(Robustness, InterruptedRunResumesToTheSameResult) {
  TempDir t;
  make_dataset(t.path() / "data", 3, 10, 16);
  auto full = run_command(tlc_cmd(train_args(t, "full")));
  ASSERT_EQ(full.exit_code, 0) << full.out;
  EXPECT_FALSE(fs::exists(t.path() / "full" / "checkpoint.pt"));  // a finished run leaves no checkpoint

  // Stop in the head phase (mid-epoch), resume, stop again in the fine-tuning phase, resume to the end.
  auto a = run_command("TLC_INTERRUPT_AFTER_STEPS=5 " + tlc_cmd(train_args(t, "cut")));
  EXPECT_EQ(a.exit_code, 130) << a.out;
  EXPECT_NE(a.out.find("tlc: stopped: interrupted in epoch 2"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("--resume"), std::string::npos) << a.out;
  EXPECT_TRUE(fs::exists(t.path() / "cut" / "checkpoint.pt"));
  EXPECT_FALSE(fs::exists(t.path() / "cut" / "model.pt"));
  // A plain re-run into the same folder refuses to overwrite the interrupted run.
  auto again = run_command(tlc_cmd(train_args(t, "cut")));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.out.find("--resume"), std::string::npos) << again.out;

  auto b = run_command("TLC_INTERRUPT_AFTER_STEPS=9 " + tlc_cmd("train --resume " + q(t.str("cut"))));
  EXPECT_EQ(b.exit_code, 130) << b.out;
  EXPECT_NE(b.out.find("interrupted in epoch 5 after step 2"), std::string::npos) << b.out;  // fine-tuning phase
  auto c = run_command(tlc_cmd("train --resume " + q(t.str("cut"))));
  ASSERT_EQ(c.exit_code, 0) << c.out;
  EXPECT_FALSE(fs::exists(t.path() / "cut" / "checkpoint.pt"));

  // Same losses epoch by epoch (times differ), same probabilities from the saved models.
  auto strip_times = [](const std::string& csv) {
    std::string out;
    std::stringstream ss(csv);
    std::string line;
    while (std::getline(ss, line)) {
      size_t cut = line.size();
      for (int k = 0; k < 2; ++k) cut = line.rfind(',', cut - 1);
      out += line.substr(0, cut) + "\n";
    }
    return out;
  };
  EXPECT_EQ(strip_times(read_text(t.path() / "cut" / "history.csv")), strip_times(read_text(t.path() / "full" / "history.csv")));
  const std::string img = t.str("data/square_green/img3.png");
  auto pf = predict_json(t.str("full/model.pt"), img), pc = predict_json(t.str("cut/model.pt"), img);
  for (auto& [name, p] : pf[0]["probabilities"].items())
    EXPECT_NEAR(p.get<double>(), pc[0]["probabilities"][name].get<double>(), 1e-6) << name;
}

TEST(Robustness, SigintStopsTrainingWithACheckpoint) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  // Many epochs without caches: still running when the signal comes.
  std::string cmd = tlc_cmd("train " + q(t.str("data")) + " --backbone " + q(source("models/tiny_cnn.pt")) + " --out " +
                            q(t.str("run")) + " --image-size 16 --epochs 100000 --cache-features off");
  auto r = run_command("(" + cmd + " & pid=$!; sleep 4; kill -INT $pid; wait $pid; echo exit=$?)");
  EXPECT_NE(r.out.find("exit=130"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tlc: stopped: interrupted in epoch"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(t.path() / "run" / "checkpoint.pt"));
  EXPECT_FALSE(fs::exists(t.path() / "run" / "model.pt"));
}

TEST(Robustness, NanLossStopsWithAClearMessage) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  auto r = run_command(tlc_cmd("train " + q(t.str("data")) + " --backbone " + q(source("models/tiny_cnn.pt")) + " --out " +
                               q(t.str("run")) + " --image-size 16 --epochs 3 --optimizer sgd --lr 1e38"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("lower the learning rate"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("in epoch "), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(t.path() / "run" / "model.pt"));
}
