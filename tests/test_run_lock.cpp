// A run folder belongs to one job: a second job on a folder another one is writing stops with that job's
// pid, two jobs started together never leave a mix of both, and a finished run is replaced only with
// --overwrite.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tlc/run_folder.h"

using namespace tlc_test;
using json = nlohmann::json;

namespace {

const std::string kFlags = " --image-size 16 --batch-size 8 --optimizer adam --lr 0.01 --no-progress --device cpu";
std::string tiny() { return source("models/tiny_cnn.pt"); }
bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST(RunLock, ASecondJobOnAFolderBeingWrittenStopsWithTheOtherJobsPid) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  const std::string log = t.str("first.txt");
  const std::string first = train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 100000 --cache-features off" + kFlags);
  const std::string second = train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 1 --seed 9" + kFlags);
  auto r = run_command("(" + first + " > " + q(log) + " 2>&1 & pid=$!; for i in $(seq 1200); do grep -q 'epoch 1/' " +
                       q(log) + " && break; sleep 0.1; done; echo first=$pid; " + second +
                       "; echo second_exit=$?; kill -INT $pid; wait $pid; echo first_exit=$?)");
  const auto at = r.out.find("first=");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string pid = r.out.substr(at + 6, r.out.find('\n', at) - at - 6);
  EXPECT_TRUE(contains(r.out, "second_exit=1")) << r.out;
  EXPECT_TRUE(contains(r.out, t.str("run") + " is being written by another tlc job (pid " + pid + ")")) << r.out;
  EXPECT_TRUE(contains(r.out, "first_exit=130")) << r.out;  // the first job was not disturbed
  // The folder is the first job's: its seed (42), its checkpoint.
  EXPECT_EQ(json::parse(read_text(t.path() / "run" / "config.json"))["seed"], 42);
  EXPECT_TRUE(fs::exists(t.path() / "run" / "checkpoint.pt"));
}

TEST(RunLock, TwoJobsStartedTogetherLeaveOneWholeRun) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  const std::string a = train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 2 --seed 1" + kFlags);
  const std::string b = train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 2 --seed 2" + kFlags);
  auto r = run_command("(" + a + " > " + q(t.str("a.txt")) + " 2>&1 & pa=$!; " + b + " > " + q(t.str("b.txt")) +
                       " 2>&1 & pb=$!; wait $pa; echo a=$?; wait $pb; echo b=$?)");
  const bool a_ok = contains(r.out, "a=0"), b_ok = contains(r.out, "b=0");
  EXPECT_NE(a_ok, b_ok) << r.out << read_text(t.path() / "a.txt") << read_text(t.path() / "b.txt");
  const std::string loser = read_text(t.path() / (a_ok ? "b.txt" : "a.txt"));
  EXPECT_TRUE(contains(loser, "is being written by another tlc job") || contains(loser, "holds a finished run")) << loser;
  // config.json, metrics.json and model.pt are all the winner's.
  const int seed = a_ok ? 1 : 2;
  EXPECT_EQ(json::parse(read_text(t.path() / "run" / "config.json"))["seed"], seed);
  EXPECT_TRUE(fs::exists(t.path() / "run" / "model.pt"));
  auto loaded = run_command(tlc_cmd("evaluate " + q(t.str("run/model.pt")) + " " + q(t.str("data")) + " --json"));
  EXPECT_EQ(loaded.exit_code, 0) << loaded.out;
}

// Every file a finished train + finetune + evaluate leaves in a run folder is one that --overwrite removes (the
// list run_folder_files()), so an overwritten folder never keeps a file of the run before; the user's own stay.
// (Files only an interrupted or failed run leaves, checkpoint.pt, finetune.json, skipped_files.tsv, are on the
// list too but not seen here.)
TEST(RunLock, OverwriteRemovesEveryFileTlcWritesAndKeepsTheUsersOwn) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  const fs::path run = t.path() / "run";
  ASSERT_EQ(run_command(train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 1" + kFlags)).exit_code, 0);
  auto tuned = run_command(tlc_cmd("finetune " + q(t.str("run")) + " --fine-tune-layers 1 --fine-tune-epochs 1 "
                                   "--no-progress"));
  ASSERT_EQ(tuned.exit_code, 0) << tuned.out;
  auto ev = run_command(tlc_cmd("evaluate " + q(t.str("run"))));
  ASSERT_EQ(ev.exit_code, 0) << ev.out;
  write_text(run / "notes.txt", "mine");
  const auto& known = tlc::run_folder_files();
  for (const auto& e : fs::directory_iterator(run)) {
    const std::string name = e.path().filename().string();
    if (name == ".lock" || name == "notes.txt") continue;
    EXPECT_NE(std::find(known.begin(), known.end(), name), known.end()) << name << " is not in run_folder_files()";
  }
  ASSERT_TRUE(fs::exists(run / "confusion.png"));
  auto over = run_command(train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 1 --overwrite" + kFlags));
  ASSERT_EQ(over.exit_code, 0) << over.out;
  EXPECT_FALSE(fs::exists(run / "confusion.png"));  // the earlier run's evaluation is gone
  EXPECT_EQ(read_text(run / "notes.txt"), "mine");
}

TEST(RunLock, AFinishedRunIsReplacedOnlyWithOverwrite) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  const fs::path model = t.path() / "run" / "model.pt";
  auto first = run_command(train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 1" + kFlags));
  ASSERT_EQ(first.exit_code, 0) << first.out;
  const std::string before = read_text(model);
  auto again = run_command(train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 1 --seed 3" + kFlags));
  EXPECT_EQ(again.exit_code, 1) << again.out;
  EXPECT_TRUE(contains(again.out, t.str("run") + " holds a finished run (model.pt); give --overwrite")) << again.out;
  EXPECT_EQ(read_text(model), before);  // untouched
  EXPECT_EQ(json::parse(read_text(t.path() / "run" / "config.json"))["seed"], 42);
  auto over = run_command(train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 1 --seed 3 --overwrite" + kFlags));
  ASSERT_EQ(over.exit_code, 0) << over.out;
  EXPECT_NE(read_text(model), before);
  EXPECT_EQ(json::parse(read_text(t.path() / "run" / "config.json"))["seed"], 3);
  // --resume keeps its meaning: a finished run goes on with more epochs, without --overwrite.
  auto more = run_command(tlc_cmd("train --resume " + q(t.str("run")) + " --epochs 2 --no-progress"));
  EXPECT_EQ(more.exit_code, 0) << more.out;
}
