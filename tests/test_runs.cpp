// Run folders in real use: every interruption resumable (train and finetune, in every long loop, on a
// signal), portable paths, splits.csv as real CSV, --resume with flags, more epochs for a finished run, and
// no empty folders left by failed runs.
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tlc/run_folder.h"
#include "tlc/error.h"
#include "tlc/util.h"

using namespace tlc_test;
using json = nlohmann::json;

namespace {

const std::string kTrainFlags =
    " --image-size 16 --batch-size 8 --optimizer adam --lr 0.01 --seed 5 --no-progress";
const std::string kTuneFlags = " --fine-tune-layers 1 --fine-tune-epochs 3 --fine-tune-lr 0.002 --batch-size 8 --no-progress";

std::string tiny() { return source("models/tiny_cnn.pt"); }

// history.csv without the two timing columns.
std::string losses(const fs::path& history) {
  std::string out, line;
  std::stringstream ss(read_text(history));
  while (std::getline(ss, line)) {
    size_t cut = line.size();
    for (int k = 0; k < 2; ++k) cut = line.rfind(',', cut - 1);
    out += line.substr(0, cut) + "\n";
  }
  return out;
}

json predict_json(const std::string& model, const std::string& img) {
  auto r = run_command(tlc_cmd("predict " + q(model) + " " + q(img) + " --json 2>/dev/null"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return json::parse(r.out);
}

void expect_same_model(const fs::path& a, const fs::path& b, const std::string& img) {
  auto pa = predict_json(a.string(), img), pb = predict_json(b.string(), img);
  for (auto& [name, p] : pa[0]["probabilities"].items())
    EXPECT_NEAR(p.get<double>(), pb[0]["probabilities"][name].get<double>(), 1e-6) << name;
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST(Runs, FinetuneInterruptedWritesACheckpointAndResumesToTheSameResult) {
  TempDir t;
  make_dataset(t.path() / "data", 3, 10, 16);
  ASSERT_EQ(run_command(train_cmd(t.str("data"), tiny(), t.str("base"), "--epochs 2" + kTrainFlags)).exit_code, 0);
  const std::string base_model = read_text(t.path() / "base" / "model.pt");

  auto full = run_command(tlc_cmd("finetune " + q(t.str("base")) + " --out " + q(t.str("full")) + kTuneFlags));
  ASSERT_EQ(full.exit_code, 0) << full.out;
  EXPECT_FALSE(fs::exists(t.path() / "full" / "checkpoint.pt"));
  EXPECT_FALSE(fs::exists(t.path() / "full" / "finetune.json"));

  // Stopped in its second epoch (3 steps per epoch): a checkpoint, the real folder in the advice.
  auto cut = run_command("TLC_INTERRUPT_AFTER_STEPS=4 " +
                         tlc_cmd("finetune " + q(t.str("base")) + " --out " + q(t.str("cut")) + kTuneFlags));
  EXPECT_EQ(cut.exit_code, 130) << cut.out;
  EXPECT_TRUE(contains(cut.out, "interrupted in epoch 4 after step 1")) << cut.out;
  EXPECT_TRUE(contains(cut.out, "continue with `tlc finetune --resume " + t.str("cut") + "`")) << cut.out;
  EXPECT_FALSE(contains(cut.out, "RUN_DIR")) << cut.out;
  EXPECT_TRUE(fs::exists(t.path() / "cut" / "checkpoint.pt"));
  EXPECT_TRUE(fs::exists(t.path() / "cut" / "finetune.json"));
  EXPECT_EQ(read_text(t.path() / "base" / "model.pt"), base_model);  // the source run is untouched

  auto resumed = run_command(tlc_cmd("finetune --resume " + q(t.str("cut")) + " --no-progress"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  EXPECT_FALSE(fs::exists(t.path() / "cut" / "checkpoint.pt"));
  EXPECT_EQ(losses(t.path() / "cut" / "history.csv"), losses(t.path() / "full" / "history.csv"));
  expect_same_model(t.path() / "full" / "model.pt", t.path() / "cut" / "model.pt", t.str("data/square_green/img3.png"));
}

TEST(Runs, FinetuneInPlaceInterruptedKeepsModelAndResumesWithEitherCommand) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  ASSERT_EQ(run_command(train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 1" + kTrainFlags)).exit_code, 0);
  const std::string before = read_text(t.path() / "run" / "model.pt");
  auto cut = run_command("TLC_INTERRUPT_AFTER_STEPS=2 " +
                         tlc_cmd("finetune " + q(t.str("run")) + kTuneFlags + " --cache-features off"));
  EXPECT_EQ(cut.exit_code, 130) << cut.out;
  EXPECT_TRUE(contains(cut.out, "tlc finetune --resume " + t.str("run"))) << cut.out;
  EXPECT_EQ(read_text(t.path() / "run" / "model.pt"), before);
  // A plain `tlc finetune` into the same folder refuses to overwrite the interrupted one.
  auto again = run_command(tlc_cmd("finetune " + q(t.str("run")) + kTuneFlags));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_TRUE(contains(again.out, "--resume")) << again.out;
  // `tlc train --resume` knows it is a fine-tuning job.
  auto r = run_command(tlc_cmd("train --resume " + q(t.str("run")) + " --no-progress"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(read_text(t.path() / "run" / "model.pt"), before);
  EXPECT_TRUE(contains(read_text(t.path() / "run" / "history.csv"), "\n4,fine-tune,"));
}

TEST(Runs, EveryLongLoopChecksTheInterruptAndTheRunResumes) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  struct Case {
    std::string hook, expect, cmd_flags;
  };
  const std::vector<Case> cases = {
      {"running the first pass", "interrupted while running the first pass", ""},
      {"decoding", "interrupted while decoding images", " --cache-features off"},
      {"scoring", "interrupted while scoring", " --cache-features off"},
  };
  int k = 0;
  for (const auto& c : cases) {
    const std::string run = t.str("run" + std::to_string(k++));
    auto r = run_command("TLC_INTERRUPT_IN=" + q(c.hook) + " " +
                         train_cmd(t.str("data"), tiny(), run, "--epochs 2" + kTrainFlags + c.cmd_flags));
    EXPECT_EQ(r.exit_code, 130) << r.out;
    EXPECT_TRUE(contains(r.out, c.expect)) << r.out;
    EXPECT_TRUE(contains(r.out, "tlc train --resume " + run)) << r.out;
    auto res = run_command(tlc_cmd("train --resume " + q(run) + " --no-progress"));
    EXPECT_EQ(res.exit_code, 0) << c.hook << ": " << res.out;
    EXPECT_TRUE(fs::exists(fs::path(run) / "model.pt")) << c.hook;
  }
  // Prefix caching while fine-tuning.
  ASSERT_EQ(run_command(train_cmd(t.str("data"), tiny(), t.str("base"), "--epochs 1" + kTrainFlags)).exit_code, 0);
  auto f = run_command("TLC_INTERRUPT_IN=caching " + tlc_cmd("finetune " + q(t.str("base")) + " --out " +
                                                               q(t.str("tuned")) + kTuneFlags));
  EXPECT_EQ(f.exit_code, 130) << f.out;
  EXPECT_TRUE(contains(f.out, "interrupted while caching frozen prefix")) << f.out;
  auto fr = run_command(tlc_cmd("finetune --resume " + q(t.str("tuned")) + " --no-progress"));
  EXPECT_EQ(fr.exit_code, 0) << fr.out;
  EXPECT_TRUE(fs::exists(t.path() / "tuned" / "model.pt"));
}

TEST(Runs, SigintAfterReadinessCheckpointsAndASecondSignalStillLeavesAResumableRun) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  const std::string log = t.str("log.txt");
  const std::string cmd = train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 100000 --cache-features off" + kTrainFlags);
  // Wait for the first epoch line (the run is training) instead of a fixed sleep, then signal.
  auto signal_run = [&](const std::string& signals) {
    return run_command("(" + cmd + " > " + q(log) + " 2>&1 & pid=$!; for i in $(seq 1200); do grep -q 'epoch 1/' " +
                       q(log) + " && break; sleep 0.1; done; " + signals + " wait $pid; echo exit=$?; cat " + q(log) + ")");
  };
  auto r = signal_run("kill -INT $pid;");
  EXPECT_TRUE(contains(r.out, "exit=130")) << r.out;
  EXPECT_TRUE(contains(r.out, "tlc: stopped: interrupted in epoch")) << r.out;
  EXPECT_TRUE(contains(r.out, "continue with `tlc train --resume " + t.str("run") + "`")) << r.out;
  EXPECT_TRUE(fs::exists(t.path() / "run" / "checkpoint.pt"));
  auto go_on = run_command("TLC_INTERRUPT_AFTER_STEPS=1 " + tlc_cmd("train --resume " + q(t.str("run"))));
  EXPECT_EQ(go_on.exit_code, 130) << go_on.out;
  EXPECT_TRUE(contains(go_on.out, "resuming from")) << go_on.out;

  // Two signals at once: the program ends with 130 either way, and the checkpoint on disk stays loadable.
  fs::remove_all(t.path() / "run");
  auto two = signal_run("kill -INT $pid; kill -INT $pid;");
  EXPECT_TRUE(contains(two.out, "exit=130")) << two.out;
  auto after = run_command("TLC_INTERRUPT_AFTER_STEPS=1 " + tlc_cmd("train --resume " + q(t.str("run"))));
  EXPECT_EQ(after.exit_code, 130) << after.out;
  EXPECT_TRUE(contains(after.out, "resuming from")) << after.out;
}

TEST(Runs, RunFolderWorksFromAnyWorkingDirectory) {
  TempDir t;
  make_dataset(t.path() / "work" / "data", 2, 8, 16);
  fs::create_directories(t.path() / "elsewhere");
  const std::string work = "cd " + q(t.str("work")) + " && ";
  const std::string elsewhere = "cd " + q(t.str("elsewhere")) + " && ";
  // Relative paths, as users type them; interrupted after 3 steps.
  auto r = run_command(work + "TLC_INTERRUPT_AFTER_STEPS=3 " +
                       tlc_cmd("train data --backbone " + q(tiny()) + " --out runs/a --epochs 3 --test-split 0.25" + kTrainFlags));
  ASSERT_EQ(r.exit_code, 130) << r.out;
  EXPECT_TRUE(contains(r.out, "tlc train --resume " + t.str("work/runs/a"))) << r.out;
  json cfg = json::parse(read_text(t.path() / "work/runs/a/config.json"));
  EXPECT_EQ(cfg["data_dir"], t.str("work/data"));
  EXPECT_EQ(cfg["data_root"], t.str("work/data"));
  EXPECT_EQ(cfg["cwd"], t.str("work"));
  for (const auto& row : tlc::read_splits(t.str("work/runs/a/splits.csv"), ""))
    EXPECT_TRUE(fs::path(row.path).is_absolute()) << row.path;

  auto res = run_command(elsewhere + tlc_cmd("train --resume ../work/runs/a --no-progress"));
  ASSERT_EQ(res.exit_code, 0) << res.out;
  auto ev = run_command(elsewhere + tlc_cmd("evaluate ../work/runs/a/model.pt"));
  EXPECT_EQ(ev.exit_code, 0) << ev.out;
  EXPECT_TRUE(contains(ev.out, "images: 4")) << ev.out;
  auto ft = run_command(elsewhere + tlc_cmd("finetune ../work/runs/a --out tuned" + kTuneFlags));
  EXPECT_EQ(ft.exit_code, 0) << ft.out;
  EXPECT_TRUE(fs::exists(t.path() / "elsewhere/tuned/model.pt"));

  // A moved data folder: the files are "missing", by name, not "undecodable".
  fs::rename(t.path() / "work/data", t.path() / "work/data_moved");
  auto gone = run_command(elsewhere + tlc_cmd("evaluate ../work/runs/a/model.pt"));
  EXPECT_EQ(gone.exit_code, 1) << gone.out;
  EXPECT_TRUE(contains(gone.out, "missing")) << gone.out;
  EXPECT_TRUE(contains(gone.out, t.str("work/data/"))) << gone.out;
  EXPECT_FALSE(contains(gone.out, "could not be decoded")) << gone.out;
  fs::rename(t.path() / "work/data_moved", t.path() / "work/data");

  // An old run folder (relative paths, no recorded cwd) still works from the directory it was made in.
  cfg = json::parse(read_text(t.path() / "work/runs/a/config.json"));
  cfg.erase("cwd");
  cfg["data_dir"] = "data";
  cfg["backbone_path"] = fs::relative(tiny(), t.path() / "work").string();
  write_text(t.path() / "work/runs/a/config.json", cfg.dump(2));
  std::string splits = read_text(t.path() / "work/runs/a/splits.csv"), prefix = t.str("work") + "/";
  for (size_t at; (at = splits.find(prefix)) != std::string::npos;) splits.erase(at, prefix.size());
  write_text(t.path() / "work/runs/a/splits.csv", splits);
  auto old_eval = run_command(work + tlc_cmd("evaluate runs/a/model.pt"));
  EXPECT_EQ(old_eval.exit_code, 0) << old_eval.out;
  EXPECT_TRUE(contains(old_eval.out, "images: 4")) << old_eval.out;
  auto old_ft = run_command(work + tlc_cmd("finetune runs/a --out runs/b" + kTuneFlags));
  EXPECT_EQ(old_ft.exit_code, 0) << old_ft.out;
}

TEST(Runs, SplitsCsvRoundTripsHostileNames) {
  TempDir t;
  const fs::path data = t.path() / "data";
  const std::vector<std::string> classes = {"dog", "猫, cat"};
  for (int k = 0; k < 2; ++k) {
    fs::create_directories(data / classes[k]);
    for (int i = 0; i < 6; ++i)
      cv::imwrite((data / classes[k] / ("my cat, \"fluffy\" " + std::to_string(i) + ".jpg")).string(),
                  class_image(k, 16, 7u + k * 31u + i));
  }
  auto r = run_command(train_cmd(data.string(), tiny(), t.str("run"), "--epochs 1 --val-split 0.2 --test-split 0.35" + kTrainFlags));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string splits = t.str("run/splits.csv");
  // Python's csv module: 3 fields a row, the names intact.
  const std::string py = std::string("'") + TLC_PYTHON +
                         "' -c 'import csv,sys; rows=list(csv.reader(open(sys.argv[1], newline=\"\", encoding=\"utf-8\")));"
                         " print(len(rows), set(len(r) for r in rows), sorted(set(r[1] for r in rows[1:])),"
                         " all(r[2].split(\"/\")[-1].startswith(\"my cat, \\\"fluffy\\\" \") for r in rows[1:]))' " + q(splits);
  auto p = run_command(py);
  EXPECT_EQ(p.exit_code, 0) << p.out;
  EXPECT_TRUE(contains(p.out, "13 {3} ['dog', '猫, cat'] True")) << p.out;
  // And tlc reads it back: evaluate on the run's test split.
  auto ev = run_command(tlc_cmd("evaluate " + q(t.str("run/model.pt"))));
  EXPECT_EQ(ev.exit_code, 0) << ev.out;
  EXPECT_TRUE(contains(ev.out, "images: 4")) << ev.out;
  auto rows = tlc::read_splits(splits, "");
  ASSERT_EQ(rows.size(), 12u);
  EXPECT_EQ(std::count_if(rows.begin(), rows.end(), [](const tlc::SplitRow& s) { return s.label == "猫, cat"; }), 6);
}

TEST(Runs, CsvParserHandlesQuotesCommasAndLineBreaks) {
  const std::string hostile = "a \"b\", c\nd";
  const std::string text = "\xEF\xBB\xBFx,y\r\n" + tlc::csv_field(hostile) + "," + tlc::csv_field("猫, cat") + "\n,\n";
  auto rows = tlc::parse_csv(text);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{hostile, "猫, cat"}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{"", ""}));
  EXPECT_THROW(tlc::parse_csv("a,\"open\n"), tlc::Error);
}

TEST(Runs, ResumeRefusesChangedSettingsAndAppliesEpochs) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  auto cut = run_command("TLC_INTERRUPT_AFTER_STEPS=3 " +
                         train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 3 --val-split 0.25" + kTrainFlags));
  ASSERT_EQ(cut.exit_code, 130) << cut.out;
  auto refused = run_command(tlc_cmd("train --resume " + q(t.str("run")) + " --lr 0.5 --batch-size 4 --seed 5"));
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_TRUE(contains(refused.out, "--lr 0.5 (the run has 0.01)")) << refused.out;
  EXPECT_TRUE(contains(refused.out, "--batch-size 4 (the run has 8)")) << refused.out;
  EXPECT_FALSE(contains(refused.out, "--seed")) << refused.out;  // given, but the same as the run's
  auto low = run_command(tlc_cmd("train --resume " + q(t.str("run")) + " --epochs 1"));
  EXPECT_EQ(low.exit_code, 1) << low.out;
  EXPECT_TRUE(contains(low.out, "below the 2 head epoch(s) the run has begun")) << low.out;
  auto more = run_command(tlc_cmd("train --resume " + q(t.str("run")) + " --epochs 5 --no-progress"));
  ASSERT_EQ(more.exit_code, 0) << more.out;
  EXPECT_TRUE(contains(more.out, "epoch 5/5")) << more.out;
  EXPECT_EQ(json::parse(read_text(t.path() / "run/config.json"))["training"]["epochs"], 5);
}

TEST(Runs, FinishedRunContinuesWithMoreEpochs) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  ASSERT_EQ(run_command(train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 2" + kTrainFlags)).exit_code, 0);
  const std::string model2 = read_text(t.path() / "run/model.pt");
  auto none = run_command(tlc_cmd("train --resume " + q(t.str("run"))));
  EXPECT_EQ(none.exit_code, 1) << none.out;
  EXPECT_TRUE(contains(none.out, "is finished (2 head epoch(s), model.pt)")) << none.out;
  EXPECT_TRUE(contains(none.out, "--epochs 7")) << none.out;
  auto more = run_command(tlc_cmd("train --resume " + q(t.str("run")) + " --epochs 4 --no-progress"));
  ASSERT_EQ(more.exit_code, 0) << more.out;
  EXPECT_TRUE(contains(more.out, "epoch 3/4")) << more.out;
  EXPECT_TRUE(contains(more.out, "epoch 4/4")) << more.out;
  EXPECT_FALSE(contains(more.out, "epoch 1/4")) << more.out;
  const std::string history = read_text(t.path() / "run/history.csv");
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 5) << history;
  EXPECT_NE(read_text(t.path() / "run/model.pt"), model2);
  EXPECT_FALSE(fs::exists(t.path() / "run/checkpoint.pt"));
  // And then a fine-tuning phase on top, through the same command.
  auto tune = run_command(tlc_cmd("train --resume " + q(t.str("run")) + " --fine-tune-epochs 1 --no-progress"));
  EXPECT_EQ(tune.exit_code, 1) << tune.out;  // the run has no --fine-tune-layers: nothing would change
  auto f = run_command(tlc_cmd("train --resume " + q(t.str("run")) + " --fine-tune-layers 1 --fine-tune-epochs 1"));
  EXPECT_EQ(f.exit_code, 1) << f.out;  // a setting that cannot change: use `tlc finetune`
  EXPECT_TRUE(contains(f.out, "--fine-tune-layers 1 (the run has 0)")) << f.out;
}

TEST(Runs, KeepBestAndPatienceWithoutValidationSaySo) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 6, 16);
  auto r = run_command(train_cmd(t.str("data"), tiny(), t.str("run"),
                                 "--epochs 2 --val-split 0 --keep best --patience 1" + kTrainFlags));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "warning: --keep best and --patience 1 watch the validation loss, and this run has no "
                              "validation images")) << r.out;
  auto plain = run_command(train_cmd(t.str("data"), tiny(), t.str("run2"), "--epochs 1 --val-split 0" + kTrainFlags));
  EXPECT_FALSE(contains(plain.out, "warning: --keep")) << plain.out;
}

TEST(Runs, FailedRunsRemoveTheFoldersTheyCreatedOnly) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  // Fails in the split (too few images), after config.json was written, in folders it created: all gone.
  const std::string too_small = "--val-split 0.5 --test-split 0.45 --image-size 16";
  auto r = run_command(train_cmd(t.str("data"), tiny(), t.str("new/runs/a"), too_small));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "too few")) << r.out;
  EXPECT_FALSE(fs::exists(t.path() / "new")) << "the folders the run created are gone";
  // The same in a folder that existed: it stays, with what was in it.
  write_text(t.path() / "mine" / "notes.txt", "keep me");
  auto small = run_command(train_cmd(t.str("data"), tiny(), t.str("mine"), too_small));
  EXPECT_EQ(small.exit_code, 1) << small.out;
  EXPECT_EQ(read_text(t.path() / "mine" / "notes.txt"), "keep me");
  // finetune --out NEW that fails in the split: NEW is not left behind.
  ASSERT_EQ(run_command(train_cmd(t.str("data"), tiny(), t.str("run"), "--epochs 1" + kTrainFlags)).exit_code, 0);
  make_dataset(t.path() / "other", 2, 1, 16);  // the same classes, too few images to split
  auto ft = run_command(tlc_cmd("finetune " + q(t.str("run")) + " --out " + q(t.str("tuned")) + " --data " +
                                q(t.str("other")) + kTuneFlags));
  EXPECT_EQ(ft.exit_code, 1) << ft.out;
  EXPECT_FALSE(fs::exists(t.path() / "tuned"));
}
