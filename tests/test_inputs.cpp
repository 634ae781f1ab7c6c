// What Keras/fastai users look for: resize modes (stretch/crop/pad) kept in the model file, labels from a
// CSV or from file names, "unknown" below a confidence, the normalization a bare backbone gets, and the
// sheet of highest-loss images. (GIF/TIFF and unsupported formats: test_formats.cpp.)
#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <sstream>

#include "test_util.h"
#include "tlc/error.h"
#include "tlc/image_io.h"
#include "tlc/labels.h"
#include "tlc/model_file.h"
#include "tlc/preprocess.h"
#include "tlc/run.h"
#include "tlc/trainer.h"

using namespace tlc_test;
using tlc::ResizeMode;

namespace {

// RGB pixel (x, y) = (10x+1, 10y+1, 7): every column and row tells where it came from. Returned as BGR for
// OpenCV's encoder.
cv::Mat coordinates_image(int w, int h) {
  cv::Mat bgr(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(7, 10 * y + 1, 10 * x + 1);
  return bgr;
}

// Encodes as PNG (lossless) and decodes through tlc at size x size; returns RGB HWC bytes.
std::vector<uint8_t> through_tlc(const cv::Mat& bgr, int size, ResizeMode mode) {
  std::vector<uint8_t> png;
  EXPECT_TRUE(cv::imencode(".png", bgr, png));
  std::vector<uint8_t> out(static_cast<size_t>(size) * size * 3, 0xAB);
  tlc::DecodeOptions opt;
  opt.size = size;
  opt.resize = mode;
  const auto st = tlc::decode_resized(png.data(), png.size(), out.data(), opt);
  EXPECT_TRUE(st.ok) << st.error;
  return out;
}

std::array<int, 3> px(const std::vector<uint8_t>& img, int size, int x, int y) {
  const size_t i = (static_cast<size_t>(y) * size + x) * 3;
  return {img[i], img[i + 1], img[i + 2]};
}

std::array<int, 3> coord(int x, int y) { return {10 * x + 1, 10 * y + 1, 7}; }

}  // namespace

// --- resize modes on the pixel level -----------------------------------------------------------------------

TEST(Resize, StretchIsTheDefaultAndTodaysBehaviour) {
  EXPECT_EQ(tlc::DecodeOptions{}.resize, ResizeMode::stretch);
  // Enlarging (bilinear) and shrinking (area averaging) exactly as cv::resize did before resize modes existed.
  for (auto [w, h, size] : {std::tuple{4, 2, 4}, std::tuple{12, 6, 4}}) {
    const cv::Mat bgr = coordinates_image(w, h);
    cv::Mat rgb, ref;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    cv::resize(rgb, ref, cv::Size(size, size), 0, 0, (w >= size && h >= size) ? cv::INTER_AREA : cv::INTER_LINEAR);
    const auto got = through_tlc(bgr, size, ResizeMode::stretch);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), ref.data)) << w << "x" << h << " -> " << size;
  }
}

TEST(Resize, CropTakesTheCentredSquare) {
  // Wide 6x2 at size 2: columns 2 and 3, unscaled.
  auto wide = through_tlc(coordinates_image(6, 2), 2, ResizeMode::crop);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x) EXPECT_EQ(px(wide, 2, x, y), coord(x + 2, y)) << x << "," << y;
  // Tall 2x6: rows 2 and 3.
  auto tall = through_tlc(coordinates_image(2, 6), 2, ResizeMode::crop);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x) EXPECT_EQ(px(tall, 2, x, y), coord(x, y + 2)) << x << "," << y;
  // Stretch on the same image keeps the outer columns' colours in the output; crop does not.
  auto stretched = through_tlc(coordinates_image(6, 2), 2, ResizeMode::stretch);
  EXPECT_NE(px(stretched, 2, 0, 0), coord(2, 0));
}

TEST(Resize, PadKeepsTheWholeImageCentredOnBlack) {
  // Wide 4x2 at size 4: rows 1-2 are the image, rows 0 and 3 black.
  auto wide = through_tlc(coordinates_image(4, 2), 4, ResizeMode::pad);
  for (int x = 0; x < 4; ++x) {
    EXPECT_EQ(px(wide, 4, x, 0), (std::array<int, 3>{0, 0, 0}));
    EXPECT_EQ(px(wide, 4, x, 1), coord(x, 0));
    EXPECT_EQ(px(wide, 4, x, 2), coord(x, 1));
    EXPECT_EQ(px(wide, 4, x, 3), (std::array<int, 3>{0, 0, 0}));
  }
  // Tall 2x4: columns 1-2 are the image.
  auto tall = through_tlc(coordinates_image(2, 4), 4, ResizeMode::pad);
  for (int y = 0; y < 4; ++y) {
    EXPECT_EQ(px(tall, 4, 0, y), (std::array<int, 3>{0, 0, 0}));
    EXPECT_EQ(px(tall, 4, 1, y), coord(0, y));
    EXPECT_EQ(px(tall, 4, 2, y), coord(1, y));
    EXPECT_EQ(px(tall, 4, 3, y), (std::array<int, 3>{0, 0, 0}));
  }
  // Shrinking 8x2 to 4: the image becomes 4x1 in row 1 (of rows 0..3), everything else black.
  auto small = through_tlc(coordinates_image(8, 2), 4, ResizeMode::pad);
  for (int y : {0, 2, 3})
    for (int x = 0; x < 4; ++x) EXPECT_EQ(px(small, 4, x, y), (std::array<int, 3>{0, 0, 0})) << x << "," << y;
  EXPECT_NE(px(small, 4, 0, 1), (std::array<int, 3>{0, 0, 0}));
}

TEST(Resize, NamesRoundTripAndUnknownNamesAreRefused) {
  for (auto m : {ResizeMode::stretch, ResizeMode::crop, ResizeMode::pad})
    EXPECT_EQ(tlc::parse_resize_mode(tlc::to_string(m)), m);
  try {
    tlc::parse_resize_mode("fit");
    FAIL() << "no error";
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("stretch, crop or pad"), std::string::npos) << e.what();
  }
}

TEST(Resize, RecordedInTheModelFileAndReadByPython) {
  TempDir t;
  tlc::TrainOptions o;
  o.device = "cpu";
  tlc::Preprocess pre;
  pre.image_size = 16;
  pre.resize = ResizeMode::pad;
  tlc::TransferClassifier clf(tlc::Backbone::load(source("models/tiny_cnn.pt")), {"a", "b"}, pre, o);
  clf.save(t.str("model.pt"));
  EXPECT_EQ(tlc::ModelFile::load(t.str("model.pt")).meta().resize, ResizeMode::pad);
  EXPECT_EQ(tlc::TransferClassifier::load(t.str("model.pt"), o).preprocess().resize, ResizeMode::pad);
  auto r = run_command(q(TLC_PYTHON) + " -c \"import torch; print(torch.jit.load('" + t.str("model.pt") + "').resize)\"");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("pad"), std::string::npos) << r.out;
}

TEST(Resize, ModelFilesFromBeforeResizeModesMeanStretch) {
  // tests/golden/model_v1_no_resize.pt was written by tlc before the `resize` attribute existed.
  auto m = tlc::ModelFile::load(source("tests/golden/model_v1_no_resize.pt"));
  EXPECT_FALSE(m.module().hasattr("resize"));
  EXPECT_EQ(m.meta().resize, ResizeMode::stretch);
  // predict on a wide image gives exactly what the stretched pixels give.
  TempDir t;
  cv::imwrite(t.str("wide.png"), coordinates_image(24, 8));
  const auto preds = tlc::predict_paths(m, {t.str("wide.png")}, 1, 1);
  ASSERT_TRUE(preds.at(0).ok) << preds[0].error;
  const int s = static_cast<int>(m.meta().image_size);
  auto pixels = through_tlc(coordinates_image(24, 8), s, ResizeMode::stretch);
  auto probs = m.predict_proba(at::from_blob(pixels.data(), {1, s, s, 3}, at::kByte).clone());
  for (int64_t k = 0; k < probs.size(1); ++k) EXPECT_EQ(preds[0].probabilities[k], probs[0][k].item<float>());
  auto cropped = through_tlc(coordinates_image(24, 8), s, ResizeMode::crop);
  EXPECT_NE(pixels, cropped);  // the check above could tell stretch from crop
}

// --- predict --min-confidence ------------------------------------------------------------------------------

TEST(MinConfidence, BelowTheThresholdTheLabelIsUnknown) {
  const std::vector<std::string> cls{"cat", "dog"};
  EXPECT_EQ(tlc::predicted_label({0.6f, 0.4f}, cls, 0.0), "cat");
  EXPECT_EQ(tlc::predicted_label({0.4f, 0.6f}, cls, 0.6), "dog");  // reaching it is enough
  EXPECT_EQ(tlc::predicted_label({0.6f, 0.4f}, cls, 0.7), "unknown");
}

// --- normalization of a backbone without tlc's metadata ----------------------------------------------------

TEST(Normalization, AssumedDefaultIsSaidWithTheWayToChoose) {
  tlc::BackboneInfo bare;
  bare.path = "resnet.pt";
  auto c = tlc::choose_normalize("auto", bare);
  EXPECT_EQ(c.mode, tlc::NormalizeMode::minus1to1);
  EXPECT_NE(c.warning.find("assuming minus1to1"), std::string::npos) << c.warning;
  EXPECT_NE(c.warning.find("--normalize imagenet"), std::string::npos) << c.warning;
  EXPECT_TRUE(tlc::choose_normalize("imagenet", bare).warning.empty());
  tlc::BackboneInfo tagged = bare;
  tagged.normalize = "caffe";
  EXPECT_EQ(tlc::choose_normalize("auto", tagged).mode, tlc::NormalizeMode::caffe);
  EXPECT_TRUE(tlc::choose_normalize("auto", tagged).warning.empty());
  EXPECT_NE(tlc::choose_normalize("imagenet", tagged).warning.find("expects caffe"), std::string::npos);
}

TEST(Normalization, TrainWithABareTorchScriptBackboneSaysWhatItAssumed) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 3, 16);
  // A TorchScript conv net as torch.jit.script makes it: no tlc_* attributes.
  auto mk = run_command(q(TLC_PYTHON) + " -c \"import torch; torch.jit.save(torch.jit.script(torch.nn.Sequential("
                        "torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())), '" + t.str("bare.pt") + "')\"");
  ASSERT_EQ(mk.exit_code, 0) << mk.out;
  auto r = run_command(train_cmd(t.str("data"), t.str("bare.pt"), t.str("run"),
                                 "--image-size 16 --epochs 1 --val-split 0 --test-split 0 --no-progress"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("assuming minus1to1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--normalize imagenet"), std::string::npos) << r.out;
  auto chosen = run_command(train_cmd(t.str("data"), t.str("bare.pt"), t.str("run2"),
                                      "--image-size 16 --epochs 1 --val-split 0 --test-split 0 --no-progress "
                                      "--normalize imagenet"));
  ASSERT_EQ(chosen.exit_code, 0) << chosen.out;
  EXPECT_EQ(chosen.out.find("assuming"), std::string::npos) << chosen.out;
  EXPECT_NE(chosen.out.find("normalize imagenet (from --normalize)"), std::string::npos) << chosen.out;
}

// --- labels from a CSV or from file names ------------------------------------------------------------------

TEST(Labels, CsvParserHandlesQuotesLineEndingsAndAByteOrderMark) {
  auto rows = tlc::parse_csv("\xEF\xBB\xBFpath,label\r\n\"a, \"\"b\"\".png\",cat\n\nc.png,dog", "x.csv");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"path", "label"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"a, \"b\".png", "cat"}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{""}));
  EXPECT_EQ(rows[3], (std::vector<std::string>{"c.png", "dog"}));
  EXPECT_THROW(tlc::parse_csv("a,\"b\n", "x.csv"), tlc::Error);
}

TEST(Labels, CsvPathsAreRelativeToTheDataFolder) {
  TempDir t;
  for (const char* f : {"img/a.png", "img/b.png", "img/c.png", "img/d.png", "img/e.txt"}) write_text(t.path() / "data" / f, "x");
  // The CSV lives elsewhere: relative paths still mean DATA_DIR/<path>.
  write_text(t.path() / "meta" / "labels.csv",
             "path,label\nimg/b.png,dog\nimg/a.png,cat\n\"img/c.png\",cat\nimg/missing.png,dog\nimg/a.png,dog\n"
             "img/e.txt,cat\nimg/d.png,\n" + t.str("data/img/d.png") + ",dog\n");
  auto f = tlc::list_labelled_images(t.str("data"), {t.str("meta/labels.csv"), ""});
  EXPECT_EQ(f.classes, (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(f.items.size(), 4u);
  EXPECT_EQ(f.items[0].path, t.str("data") + "/img/a.png");
  EXPECT_EQ(f.items[1].path, t.str("data") + "/img/c.png");
  EXPECT_EQ(f.items[2].path, t.str("data") + "/img/b.png");
  EXPECT_EQ(f.items[3].path, t.str("data/img/d.png"));  // absolute paths are taken as they are
  EXPECT_EQ(f.items[0].label, 0);
  EXPECT_EQ(f.items[3].label, 1);
  std::string reasons;
  for (const auto& s : f.ignored) reasons += s.path + ": " + s.reason + "\n";
  for (const char* why : {"missing.png: listed in", "a.png: listed twice", "e.txt: not an image", "d.png: no label"})
    EXPECT_NE(reasons.find(why), std::string::npos) << why << "\n" << reasons;
}

TEST(Labels, RegexTakesTheFirstGroupOfTheFileName) {
  TempDir t;
  for (const char* f : {"cat.0.png", "cat.1.png", "dog.0.png", "sub/dog.7.jpg", "x_7.png", ".cat.9.png", "Thumbs.db"})
    write_text(t.path() / f, "x");
  auto f = tlc::list_labelled_images(t.str(), {"", R"(^([a-z]+)\.)"});
  EXPECT_EQ(f.classes, (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(f.items.size(), 4u);
  EXPECT_EQ(f.items[3].path, t.str("sub/dog.7.jpg"));
  std::string reasons;
  for (const auto& s : f.ignored) reasons += s.path + ": " + s.reason + "\n";
  EXPECT_NE(reasons.find("x_7.png: file name does not match"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find(".cat.9.png: hidden"), std::string::npos) << reasons;
  EXPECT_NE(f.layout_note.find("1 file(s) got no label"), std::string::npos) << f.layout_note;
}

TEST(Labels, BadRegexesAndTooFewClassesSayWhy) {
  TempDir t;
  for (const char* f : {"cat.0.png", "cat.1.png", "dog_0.png"}) write_text(t.path() / f, "x");
  auto message = [&](const std::string& re) {
    try {
      tlc::list_labelled_images(t.str(), {"", re});
    } catch (const tlc::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("^[a-z]+\\.").find("no capture group"), std::string::npos);
  EXPECT_NE(message("^([a-z]+\\.").find("not a valid regular expression"), std::string::npos);
  const std::string one = message("^([a-z]+)\\.");
  EXPECT_NE(one.find("1 class(es)"), std::string::npos) << one;
  EXPECT_NE(one.find("dog_0.png does not match"), std::string::npos) << one;
}

TEST(Labels, TrainOnAFlatKaggleFolderByRegexOrCsv) {
  TempDir t;
  // Kaggle's dogs-vs-cats: train/cat.0.jpg, train/dog.0.jpg, ... in one folder.
  std::ostringstream csv;
  csv << "file,class\n";
  fs::create_directories(t.path() / "train");
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 5; ++i) {
      const std::string name = std::string(k ? "dog" : "cat") + "." + std::to_string(i) + ".png";
      cv::imwrite(t.str("train/" + name), class_image(k, 16, 50 + 10 * k + i));
      csv << name << "," << (k ? "dog" : "cat") << "\n";
    }
  write_text(t.path() / "train" / "notes.png.txt", "x");
  cv::imwrite(t.str("train/unlabelled_1.png"), class_image(0, 16, 1));
  write_text(t.path() / "labels.csv", csv.str());
  for (const std::string& how : {std::string("--label-regex '^([a-z]+)\\.'"), "--labels " + q(t.str("labels.csv"))}) {
    const std::string run = t.str(how.find("regex") != std::string::npos ? "run_regex" : "run_csv");
    auto r = run_command(train_cmd(t.str("train"), source("models/tiny_cnn.pt"), run,
                                   how + " --image-size 16 --epochs 1 --val-split 0.2 --test-split 0.2 --no-progress"));
    ASSERT_EQ(r.exit_code, 0) << how << "\n" << r.out;
    EXPECT_NE(r.out.find("classes (2): cat, dog"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("train 6 (cat 3, dog 3)"), std::string::npos) << r.out;
    auto cfg = nlohmann::json::parse(read_text(run + "/config.json"));
    EXPECT_EQ(cfg["classes"], (std::vector<std::string>{"cat", "dog"}));
    const std::string splits = read_text(run + "/splits.csv");
    EXPECT_NE(splits.find("test,dog,"), std::string::npos) << splits;
    EXPECT_EQ(splits.find("unlabelled"), std::string::npos) << splits;
    if (how.find("regex") != std::string::npos)
      EXPECT_NE(read_text(run + "/skipped_files.tsv").find("unlabelled_1.png\tignored: file name does not match"),
                std::string::npos);
    // The run's own test split evaluates like a folder-labelled one.
    auto e = run_command(tlc_cmd("evaluate " + q(run + "/model.pt") + " --json"));
    ASSERT_EQ(e.exit_code, 0) << e.out;
    EXPECT_EQ(nlohmann::json::parse(e.out)["count"], 2);
    // A labels CSV describes the run's own folder: finetune --data elsewhere is refused, naming it.
    if (how.find("regex") == std::string::npos) {
      auto f = run_command(tlc_cmd("finetune " + q(run) + " --fine-tune-layers 1 --data " + q(t.str())));
      EXPECT_NE(f.exit_code, 0) << f.out;
      EXPECT_NE(f.out.find("lists its own data folder's files"), std::string::npos) << f.out;
    }
  }
}

// --- one trained model, used by predict and evaluate checks --------------------------------------------------

class TrainedWide : public ::testing::Test {
 protected:
  // Wide 32x16 images trained with --resize crop: crop and stretch give different pixels for them. Trained
  // once per process (ctest runs each test in its own).
  void SetUp() override {
    if (!dir_) train_once();
    ASSERT_EQ(train_.exit_code, 0) << train_.out;
  }
  static void train_once() {
    dir_ = new TempDir;
    for (int k = 0; k < 2; ++k)
      for (int i = 0; i < 5; ++i) {
        cv::Mat wide;
        cv::resize(class_image(k, 32, 300 + 10 * k + i), wide, cv::Size(32, 16));
        fs::create_directories(dir_->path() / "data" / (k ? "dog" : "cat"));
        cv::imwrite(dir_->str(std::string("data/") + (k ? "dog" : "cat") + "/w" + std::to_string(i) + ".png"), wide);
      }
    train_ = run_command(train_cmd(dir_->str("data"), source("models/tiny_cnn.pt"), dir_->str("run"),
                                   "--image-size 16 --epochs 1 --val-split 0 --test-split 0.2 --resize crop --no-progress"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string model() { return dir_->str("run/model.pt"); }
  static std::string image() { return dir_->str("data/cat/w0.png"); }
  static TempDir* dir_;
  static CommandResult train_;
};
TempDir* TrainedWide::dir_ = nullptr;
CommandResult TrainedWide::train_;

TEST_F(TrainedWide, ResizeModeIsInConfigAndModelAndUsedByPredictAndEvaluate) {
  EXPECT_NE(train_.out.find("resize crop"), std::string::npos) << train_.out;
  EXPECT_EQ(nlohmann::json::parse(read_text(dir_->str("run/config.json")))["resize"], "crop");
  EXPECT_EQ(tlc::ModelFile::load(model()).meta().resize, ResizeMode::crop);
  auto probs = [&](const std::string& extra) {
    auto r = run_command(tlc_cmd("predict " + q(model()) + " " + q(image()) + " --json " + extra));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return nlohmann::json::parse(r.out)[0]["probabilities"].dump();
  };
  EXPECT_EQ(probs(""), probs("--resize crop"));
  EXPECT_NE(probs(""), probs("--resize stretch"));
  auto loss = [&](const std::string& extra) {
    auto r = run_command(tlc_cmd("evaluate " + q(model()) + " " + q(dir_->str("data")) + " --json --out " +
                                 q(dir_->str("eval")) + " " + extra));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return nlohmann::json::parse(r.out)["loss"].get<double>();
  };
  EXPECT_EQ(loss(""), loss("--resize crop"));
  EXPECT_NE(loss(""), loss("--resize stretch"));
}

TEST_F(TrainedWide, PredictMinConfidenceSaysUnknownInTextJsonAndCsv) {
  const std::string base = "predict " + q(model()) + " " + q(image());
  // Two classes: the top probability is always >= 0.5 and (for this barely trained model) below 1.
  auto text = run_command(tlc_cmd(base + " --min-confidence 1"));
  ASSERT_EQ(text.exit_code, 0) << text.out;
  EXPECT_NE(text.out.find(": unknown (no class reaches 100.0%). This image seems "), std::string::npos) << text.out;
  auto sure = run_command(tlc_cmd(base + " --min-confidence 0.5"));
  EXPECT_EQ(sure.out.find("unknown"), std::string::npos) << sure.out;

  auto js = run_command(tlc_cmd(base + " --json --min-confidence 1"));
  ASSERT_EQ(js.exit_code, 0) << js.out;
  auto j = nlohmann::json::parse(js.out)[0];
  EXPECT_EQ(j["label"], "unknown");
  EXPECT_EQ(j["probabilities"].size(), 2u);  // the probabilities are kept
  EXPECT_EQ(j["top"].size(), 2u);
  EXPECT_NE(nlohmann::json::parse(run_command(tlc_cmd(base + " --json")).out)[0]["label"], "unknown");

  auto csv = run_command(tlc_cmd(base + " --csv --min-confidence 1"));
  ASSERT_EQ(csv.exit_code, 0) << csv.out;
  const std::string row = csv.out.substr(csv.out.find('\n') + 1);
  EXPECT_EQ(row.rfind(image() + ",unknown,0.", 0), 0u) << csv.out;
  EXPECT_EQ(std::count(row.begin(), row.end(), ','), 5) << row;  // path,label,probability,cat,dog,error

  EXPECT_NE(run_command(tlc_cmd(base + " --min-confidence 1.5")).exit_code, 0);
}

TEST_F(TrainedWide, EvaluateShowWritesTheHighestLossSheet) {
  const std::string png = dir_->str("worst.png");
  auto r = run_command(tlc_cmd("evaluate " + q(model()) + " " + q(dir_->str("data")) + " --out " + q(dir_->str("ev")) +
                               " --show " + q(png) + " --show-count 3"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("highest-loss images: " + png), std::string::npos) << r.out;
  cv::Mat sheet = cv::imread(png);
  ASSERT_FALSE(sheet.empty());
  EXPECT_EQ(sheet.cols, 3 * 160);  // three tiles of 160 in one row, each with a two-line caption
  EXPECT_EQ(sheet.rows, 160 + 34);
  // More asked for than there are images: all ten, in two rows of six.
  r = run_command(tlc_cmd("evaluate " + q(model()) + " " + q(dir_->str("data")) + " --out " + q(dir_->str("ev")) +
                          " --show " + q(png) + " --show-count 50"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  sheet = cv::imread(png);
  EXPECT_EQ(sheet.cols, 6 * 160);
  EXPECT_EQ(sheet.rows, 2 * (160 + 34));
}
