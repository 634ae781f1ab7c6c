// What a new user meets on messy real-world folders (issue 13): odd folder names and layouts, bad files,
// arguments in the wrong order, and the wording of messages, each through the command a user would run.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tlc/dataset.h"
#include "tlc/error.h"
#include "tlc/metrics.h"
#include "tlc/plots.h"
#include "tlc/text.h"

using namespace tlc_test;
using json = nlohmann::json;

namespace {

const std::string kTiny = source("models/tiny_cnn.pt");
const std::string kFast = "--image-size 16 --batch-size 8 --epochs 1 --no-progress";

bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// A trained 2-class run (tiny backbone, 16 px) in t/run from t/data.
struct TrainedRun {
  TempDir t;
  std::vector<std::string> classes;
  explicit TrainedRun(const std::string& extra = "") {
    classes = make_dataset(t.path() / "data", 2, 6, 16);
    auto r = run_command(train_cmd(t.str("data"), kTiny, t.str("run"), kFast + " " + extra));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    train_output = r.out;
  }
  std::string data() const { return t.str("data"); }
  std::string run() const { return t.str("run"); }
  std::string image() const { return t.str("data/" + classes[0] + "/img0.png"); }
  std::string train_output;
};

}  // namespace

// Item 4: a class folder whose name is not UTF-8 (Latin-1 "café") trains, predicts and evaluates, and the
// model file's class names load in Python.
TEST(Newcomer, NonUtf8ClassFolderWorksAndLoadsInPython) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 6, 16);
  const std::string latin1 = std::string("caf") + static_cast<char>(0xE9);
  fs::rename(t.path() / "data" / "circle_red", t.path() / "data" / latin1);
  auto r = run_command(train_cmd(t.str("data"), kTiny, t.str("run"), kFast));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string py = t.str("names.py");
  write_text(py, "import sys, torch\nprint(torch.jit.load(sys.argv[1]).class_names)\n");
  auto p = run_command(q(TLC_PYTHON) + " " + q(py) + " " + q(t.str("run/model.pt")));
  EXPECT_EQ(p.exit_code, 0) << p.out;
  EXPECT_TRUE(has(p.out, "['caf\\\\xE9', 'square_green']")) << p.out;  // Python prints the backslash doubled
  json cfg = json::parse(read_text(t.path() / "run" / "config.json"));
  EXPECT_EQ(cfg["class_folders_hex"][0], "636166e9");  // the folder's bytes, kept
  EXPECT_EQ(tlc::unescape_name(cfg["classes"][0].get<std::string>()), latin1);
  auto pr = run_command(tlc_cmd("predict " + q(t.str("run/model.pt")) + " " + q(t.str("data/" + latin1)) + " --json"));
  EXPECT_EQ(pr.exit_code, 0) << pr.out;
  auto ev = run_command(tlc_cmd("evaluate " + q(t.str("run/model.pt")) + " " + q(t.str("data"))));
  EXPECT_EQ(ev.exit_code, 0) << ev.out;
  EXPECT_TRUE(has(ev.out, "caf\\xE9")) << ev.out;
}

TEST(Newcomer, NameEscapingIsReversibleAndKeepsUtf8) {
  for (std::string raw : {std::string("cat"), std::string("猫, cat"), std::string("a\\b"),
                          std::string("caf") + static_cast<char>(0xE9), std::string("\xC0\xAF") /* overlong */,
                          std::string("\xED\xA0\x80") /* surrogate */, std::string("x\xF0\x9F")}) {
    const std::string e = tlc::escape_name(raw);
    EXPECT_TRUE(tlc::is_valid_utf8(e)) << e;
    EXPECT_EQ(tlc::unescape_name(e), raw) << e;
  }
  EXPECT_EQ(tlc::escape_name("猫"), "猫");
  EXPECT_FALSE(tlc::is_valid_utf8(std::string("caf") + static_cast<char>(0xE9)));
}

// Item 5: a Kaggle-style download (data/{train,test}/{cats,dogs}) given one level too high.
TEST(Newcomer, SplitLayoutOneLevelTooHighNamesTheRightFolder) {
  TempDir t;
  make_dataset(t.path() / "data" / "train", 2, 3, 16);
  make_dataset(t.path() / "data" / "test", 2, 2, 16);
  auto r = run_command(train_cmd(t.str("data"), kTiny, t.str("run"), kFast));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "give " + t.str("data/train") + " as the data folder")) << r.out;
  EXPECT_TRUE(has(r.out, "--test-dir " + t.str("data/test"))) << r.out;
  EXPECT_FALSE(fs::exists(t.path() / "run" / "model.pt"));

  // Other names with the same sub-folders in each are a valid layout (cat/{2019,2020}, dog/{2019,2020}): only
  // split names stop the run, since no flag could say "these really are my classes".
  TempDir u;
  make_dataset(u.path() / "data" / "part1", 2, 3, 16);
  make_dataset(u.path() / "data" / "part2", 2, 3, 16);
  EXPECT_EQ(tlc::list_image_folder(u.str("data")).classes, (std::vector<std::string>{"part1", "part2"}));

  // A single child holding the class folders.
  TempDir s;
  make_dataset(s.path() / "data" / "dataset", 2, 3, 16);
  auto one = run_command(train_cmd(s.str("data"), kTiny, s.str("run"), kFast));
  EXPECT_EQ(one.exit_code, 1) << one.out;
  EXPECT_TRUE(has(one.out, "give " + s.str("data/dataset") + " as the data folder")) << one.out;

  // Class folders that nest their images in differently named sub-folders are still classes.
  TempDir ok;
  make_dataset(ok.path() / "data" / "cat" / "siamese", 1, 2, 16);
  make_dataset(ok.path() / "data" / "cat" / "persian", 1, 2, 16);
  make_dataset(ok.path() / "data" / "dog" / "pug", 1, 2, 16);
  make_dataset(ok.path() / "data" / "dog" / "lab", 1, 2, 16);
  EXPECT_EQ(tlc::list_image_folder(ok.str("data")).classes, (std::vector<std::string>{"cat", "dog"}));
}

// Item 6: an empty class folder is said on the terminal, not only in skipped_files.tsv.
TEST(Newcomer, EmptyClassFolderIsNamedOnTheTerminal) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 6, 16);
  fs::create_directories(t.path() / "data" / "zebra");
  auto r = run_command(train_cmd(t.str("data"), kTiny, t.str("run"), kFast));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "class folder " + t.str("data/zebra") + " has no images: dropped")) << r.out;
}

// Item 7: a class whose files are all bad: the reasons on the terminal, skipped_files.tsv written.
TEST(Newcomer, ClassWithOnlyBadFilesSaysWhyAndWritesTheList) {
  TempDir t;
  make_dataset(t.path() / "data", 1, 6, 16);
  for (int i = 0; i < 4; ++i) write_text(t.path() / "data" / "dogs" / ("dog" + std::to_string(i) + ".jpg"), "not a jpeg");
  auto r = run_command(train_cmd(t.str("data"), kTiny, t.str("run"), kFast + " --val-split 0 --test-split 0"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "class 'dogs' has no usable training images left: 4 files of its 4 could not be decoded"))
      << r.out;
  EXPECT_TRUE(has(r.out, "dog0.jpg (")) << r.out;  // a file and its reason
  const std::string tsv = read_text(t.path() / "run" / "skipped_files.tsv");
  EXPECT_EQ(count_of(tsv, "\tundecodable: "), 4u) << tsv;
}

// Item 8: a run folder stands for its model.pt; swapped arguments say what was expected.
TEST(Newcomer, PredictAndEvaluateTakeARunFolderAndExplainSwappedArguments) {
  TrainedRun run;
  auto p = run_command(tlc_cmd("predict " + q(run.run()) + " " + q(run.image())));
  EXPECT_EQ(p.exit_code, 0) << p.out;
  EXPECT_TRUE(has(p.out, "This image seems")) << p.out;
  auto e = run_command(tlc_cmd("evaluate " + q(run.run())));
  EXPECT_EQ(e.exit_code, 0) << e.out;
  EXPECT_TRUE(has(e.out, "accuracy:")) << e.out;

  auto swapped = run_command(tlc_cmd("predict " + q(run.image()) + " " + q(run.run())));
  EXPECT_EQ(swapped.exit_code, 1) << swapped.out;
  EXPECT_TRUE(has(swapped.out, "is a PNG image, not a model; the model comes first")) << swapped.out;
  EXPECT_FALSE(has(swapped.out, "damaged")) << swapped.out;
  auto folder = run_command(tlc_cmd("evaluate " + q(run.data()) + " " + q(run.run())));
  EXPECT_EQ(folder.exit_code, 1) << folder.out;
  EXPECT_TRUE(has(folder.out, "is a folder without model.pt")) << folder.out;
  write_text(run.t.path() / "notes.txt", "hello");
  auto text = run_command(tlc_cmd("predict " + q(run.t.str("notes.txt")) + " " + q(run.image())));
  EXPECT_EQ(text.exit_code, 1) << text.out;
  EXPECT_TRUE(has(text.out, "not a model file (a tlc model.pt is a TorchScript zip archive)")) << text.out;
  // A damaged model: PyTorch's reason is not cut mid-word.
  const std::string bytes = read_text(run.t.path() / "run" / "model.pt");
  write_text(run.t.path() / "cut.pt", bytes.substr(0, 1000));
  auto cut = run_command(tlc_cmd("predict " + q(run.t.str("cut.pt")) + " " + q(run.image())));
  EXPECT_EQ(cut.exit_code, 1) << cut.out;
  EXPECT_TRUE(has(cut.out, "it is damaged (a truncated copy?)")) << cut.out;
}

// Item 9: the --max-pixels that predict's and evaluate's messages suggest exists there.
TEST(Newcomer, PredictAndEvaluateTakeMaxPixels) {
  TrainedRun run;
  auto p = run_command(tlc_cmd("predict " + q(run.run()) + " " + q(run.image()) + " --max-pixels 100"));
  EXPECT_EQ(p.exit_code, 1) << p.out;
  EXPECT_TRUE(has(p.out, "above the limit of 100 pixels")) << p.out;
  EXPECT_EQ(run_command(tlc_cmd("predict " + q(run.run()) + " " + q(run.image()) + " --max-pixels 256")).exit_code, 0);
  auto e = run_command(tlc_cmd("evaluate " + q(run.run()) + " " + q(run.data()) + " --max-pixels 100"));
  EXPECT_EQ(e.exit_code, 1) << e.out;
  EXPECT_TRUE(has(e.out, "could be decoded")) << e.out;
  EXPECT_EQ(run_command(tlc_cmd("evaluate " + q(run.run()) + " " + q(run.data()) + " --max-pixels 256")).exit_code, 0);
}

// Item 10: predict on a folder passes over the hidden files that train ignores (macOS's ._name).
TEST(Newcomer, PredictOnAFolderSkipsHiddenFilesAsTrainDoes) {
  TrainedRun run;
  const fs::path dir = run.t.path() / "data" / run.classes[0];
  write_text(dir / "._img0.png", "macOS resource fork");
  write_text(dir / ".thumbs" / "img9.png", "hidden folder");
  auto p = run_command(tlc_cmd("predict " + q(run.run()) + " " + q(dir.string()) + " --json"));
  EXPECT_EQ(p.exit_code, 0) << p.out;
  EXPECT_FALSE(has(p.out, "._img0.png")) << p.out;
  EXPECT_FALSE(has(p.out, ".thumbs")) << p.out;
  EXPECT_EQ(json::parse(p.out).size(), 6u);
  std::vector<tlc::SkippedFile> ignored;
  EXPECT_EQ(tlc::list_image_files(dir.string(), &ignored).size(), 6u);
  EXPECT_EQ(ignored.size(), 2u);
}

// Item 13: --strict counts every undecodable file, as a normal run does (train, val and test splits).
TEST(Newcomer, StrictCountsTheSameUndecodableFilesAsANormalRun) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 10, 16);
  for (int i = 0; i < 5; ++i) write_text(t.path() / "data" / "circle_red" / ("bad" + std::to_string(i) + ".jpg"), "x");
  // With seed 3, one bad file goes to the validation or test split: --strict used to stop after decoding the
  // training split and count only its 4.
  auto normal = run_command(train_cmd(t.str("data"), kTiny, t.str("run"), kFast + " --seed 3"));
  ASSERT_EQ(normal.exit_code, 0) << normal.out;
  EXPECT_TRUE(has(normal.out, "skipped 5 undecodable file(s)")) << normal.out;
  auto strict = run_command(train_cmd(t.str("data"), kTiny, t.str("strict"), kFast + " --seed 3 --strict"));
  EXPECT_EQ(strict.exit_code, 1) << strict.out;
  EXPECT_TRUE(has(strict.out, "5 files could not be decoded")) << strict.out;
  EXPECT_TRUE(fs::exists(t.path() / "strict" / "skipped_files.tsv"));
}

// Item 14: evaluate's class mismatch names both class lists.
TEST(Newcomer, EvaluateClassMismatchNamesBothLists) {
  TrainedRun run;
  TempDir other;
  make_dataset(other.path(), 3, 2, 16);
  auto e = run_command(tlc_cmd("evaluate " + q(run.run()) + " " + q(other.str())));
  EXPECT_EQ(e.exit_code, 1) << e.out;
  EXPECT_TRUE(has(e.out, "has the classes [circle_red, line_blue, square_green]")) << e.out;
  EXPECT_TRUE(has(e.out, "has [circle_red, square_green]; line_blue is not among them")) << e.out;
}

// Item 15: the rough edges of output.
TEST(Newcomer, ConfusionPngHoldsItsTitleWithTwoClasses) {
  TempDir t;
  tlc::Evaluation e = tlc::evaluate_probabilities(at::tensor({0.9f, 0.1f, 0.2f, 0.8f}).view({2, 2}), {0, 1}, 1);
  tlc::plot_confusion(e, {"cat", "dog"}, t.str("c.png"));
  cv::Mat img = cv::imread(t.str("c.png"));
  ASSERT_FALSE(img.empty());
  int baseline = 0;
  const int title = cv::getTextSize("Confusion matrix (rows: true class, columns: predicted)", cv::FONT_HERSHEY_SIMPLEX,
                                    0.5, 1, &baseline).width;
  EXPECT_GE(img.cols, 10 + title);
  cv::Mat edge = img(cv::Rect(img.cols - 4, 0, 4, 40));  // the title's row at the right edge: nothing cut off
  EXPECT_EQ(cv::countNonZero(edge.reshape(1) < 250), 0);
}

TEST(Newcomer, NonAsciiLabelsAreTransliteratedAndSaidSo) {
  bool changed = false;
  EXPECT_EQ(tlc::transliterate_ascii("Café Кот Γάτα 猫", &changed), "Cafe Kot Gata U+732B");
  EXPECT_TRUE(changed);
  EXPECT_EQ(tlc::transliterate_ascii("Straße Œuvre", &changed), "Strasse OEuvre");
  tlc::transliterate_ascii("plain", &changed);
  EXPECT_FALSE(changed);
  // On the sheet, "Café" is drawn as "Cafe" (not "Caf?"), with a note under the tiles.
  TempDir t;
  at::Tensor img = at::full({1, 16, 16, 3}, 128, at::kByte);
  tlc::write_contact_sheet(img, {"Café 97%"}, t.str("a.png"));
  tlc::write_contact_sheet(img, {"Cafe 97%"}, t.str("b.png"));
  cv::Mat a = cv::imread(t.str("a.png")), b = cv::imread(t.str("b.png"));
  ASSERT_GE(a.rows, b.rows + 10);  // the note
  cv::Rect caption(0, 160, b.cols, b.rows - 160);
  cv::Mat differ = a(caption) != b(caption);
  EXPECT_EQ(cv::countNonZero(differ.reshape(1)), 0);
}

TEST(Newcomer, PredictCsvKeepsFailedFilesWithTheirError) {
  TrainedRun run;
  write_text(run.t.path() / "broken.jpg", "not a jpeg");
  auto r = run_command(tlc_cmd("predict " + q(run.run()) + " " + q(run.image()) + " " + q(run.t.str("broken.jpg")) +
                               " --csv 2>/dev/null"));
  EXPECT_EQ(r.exit_code, 1);
  std::stringstream ss(r.out);
  std::string header, good, bad;
  std::getline(ss, header);
  std::getline(ss, good);
  std::getline(ss, bad);
  EXPECT_EQ(header, "path,label,probability,circle_red,square_green,error");
  EXPECT_EQ(std::count(good.begin(), good.end(), ','), 5) << good;
  EXPECT_EQ(good.back(), ',') << good;  // no error
  EXPECT_EQ(bad.rfind(run.t.str("broken.jpg") + ",,,,,", 0), 0u) << bad;
  EXPECT_GT(bad.size(), run.t.str("broken.jpg").size() + 6) << bad;  // the reason
}

TEST(Newcomer, MessagesReadWell) {
  TrainedRun run;
  EXPECT_TRUE(has(run.train_output, ", 1 epoch, batch")) << run.train_output;
  EXPECT_FALSE(has(run.train_output, "1 epochs")) << run.train_output;
  // Two classes: no top-2 accuracy (it is always 1).
  auto e = run_command(tlc_cmd("evaluate " + q(run.run()) + " " + q(run.data())));
  EXPECT_EQ(e.exit_code, 0) << e.out;
  EXPECT_FALSE(has(e.out, "top-2")) << e.out;
  // Fractions as people write them.
  TempDir t;
  make_dataset(t.path() / "data", 2, 2, 16);
  auto small = run_command(train_cmd(t.str("data"), kTiny, t.str("run"), kFast + " --val-split 0.3 --test-split 0.4"));
  EXPECT_EQ(small.exit_code, 1);
  EXPECT_TRUE(has(small.out, "validation split of 0.3 and a test split of 0.4")) << small.out;
  // A mistyped command.
  auto typo = run_command(tlc_cmd("trian " + q(run.data())));
  EXPECT_NE(typo.exit_code, 0);
  EXPECT_TRUE(has(typo.out, "unknown command 'trian'; did you mean 'train'?")) << typo.out;
  // bench defaults to --device auto, as the other commands.
  auto help = run_command(tlc_cmd("bench --help"));
  EXPECT_TRUE(has(help.out, "{auto,cpu,cuda}=auto")) << help.out;
}
