// Evaluation, plots, progress output and the user-facing formats (evaluate JSON, predict CSV, contact sheet).
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "test_util.h"
#include "tlc/util.h"
#include "tlc/metrics.h"
#include "tlc/plots.h"
#include "tlc/progress.h"

using namespace tlc_test;
using json = nlohmann::json;

namespace {


}  // namespace

TEST(Metrics, ConfusionMatrixAndScoresKnownByConstruction) {
  // 3 classes, 6 images: true 0,0,0,1,1,2; predicted 0,0,1,1,2,2 (argmax of the rows below).
  std::vector<int64_t> labels = {0, 0, 0, 1, 1, 2};
  at::Tensor p = at::tensor(std::vector<float>{0.8f, 0.1f, 0.1f, 0.6f, 0.3f, 0.1f, 0.3f, 0.6f, 0.1f,
                                               0.2f, 0.7f, 0.1f, 0.1f, 0.4f, 0.5f, 0.1f, 0.1f, 0.8f})
                     .reshape({6, 3});
  auto e = tlc::evaluate_probabilities(p, labels, 2);
  EXPECT_EQ(e.confusion, (std::vector<std::vector<int64_t>>{{2, 1, 0}, {0, 1, 1}, {0, 0, 1}}));
  EXPECT_DOUBLE_EQ(e.accuracy, 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(e.top_k_accuracy, 1.0);  // every true class is in the top 2
  EXPECT_DOUBLE_EQ(e.precision[0], 1.0);
  EXPECT_DOUBLE_EQ(e.recall[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(e.precision[1], 0.5);
  EXPECT_DOUBLE_EQ(e.recall[1], 0.5);
  EXPECT_DOUBLE_EQ(e.precision[2], 0.5);
  EXPECT_DOUBLE_EQ(e.f1[2], 2 * 0.5 * 1.0 / 1.5);
  EXPECT_EQ(e.support, (std::vector<int64_t>{3, 2, 1}));
  double loss = -(std::log(0.8) + std::log(0.6) + std::log(0.3) + std::log(0.7) + std::log(0.4) + std::log(0.8)) / 6;
  EXPECT_NEAR(e.loss, loss, 1e-6);
  auto top1 = tlc::evaluate_probabilities(p, labels, 1);
  EXPECT_DOUBLE_EQ(top1.top_k_accuracy, top1.accuracy);
  std::string table = tlc::confusion_table(e, {"a", "b", "c"});
  EXPECT_NE(table.find("true\\pred"), std::string::npos);
}

TEST(Plots, CurvesArePngsOfTheStatedSizeWithTheCurvesDrawn) {
  TempDir t;
  std::vector<tlc::EpochStats> h;
  for (int e = 1; e <= 6; ++e) {
    tlc::EpochStats s;
    s.epoch = e;
    s.phase = e <= 4 ? "head" : "fine-tune";
    s.acc = 0.5 + 0.08 * e;
    s.val_acc = 0.45 + 0.07 * e;
    s.loss = 1.0 / e;
    s.val_loss = 1.2 / e;
    h.push_back(s);
  }
  tlc::plot_curves(h, t.str("curves.png"));
  cv::Mat img = cv::imread(t.str("curves.png"));
  ASSERT_FALSE(img.empty());
  EXPECT_EQ(img.cols, tlc::kCurvesWidth);
  EXPECT_EQ(img.rows, tlc::kCurvesHeight);
  // Pixels of the training colour (blue, BGR 180,119,31) and the validation colour (orange) in both panels,
  // and of the fine-tuning marker (red).
  auto count = [&](cv::Vec3b c, int x0, int x1) {
    int n = 0;
    for (int y = 0; y < img.rows; ++y)
      for (int x = x0; x < x1; ++x) {
        cv::Vec3b p = img.at<cv::Vec3b>(y, x);
        n += std::abs(p[0] - c[0]) < 20 && std::abs(p[1] - c[1]) < 20 && std::abs(p[2] - c[2]) < 20;
      }
    return n;
  };
  const int half = img.cols / 2;
  for (auto [x0, x1] : {std::pair{0, half}, std::pair{half, img.cols}}) {
    EXPECT_GT(count(cv::Vec3b(180, 119, 31), x0, x1), 200);
    EXPECT_GT(count(cv::Vec3b(14, 127, 255), x0, x1), 200);
    EXPECT_GT(count(cv::Vec3b(60, 60, 200), x0, x1), 50);
  }
}

TEST(Progress, PlainOutputHasNoCarriageReturns) {
  std::ostringstream out;
  tlc::Progress p(out, /*terminal=*/false, "epoch 1", 100);
  for (int i = 0; i <= 100; i += 10) p.update(i);
  p.finish();
  EXPECT_EQ(out.str().find('\r'), std::string::npos);
  std::ostringstream tty;
  tlc::Progress b(tty, /*terminal=*/true, "epoch 1", 100);
  b.update(100);
  b.finish();
  EXPECT_NE(tty.str().find('\r'), std::string::npos);
  EXPECT_NE(tty.str().find("[##############################]"), std::string::npos);
}

TEST(Evaluate, CliJsonCsvAndPictures) {
  TempDir t;
  auto classes = make_dataset(t.path() / "data", 3, 12, 16);
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"),
                                 "--image-size 16 --epochs 8 --optimizer adam --lr 0.02"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos);  // not a terminal: no redraws
  EXPECT_TRUE(fs::exists(t.path() / "run" / "curves.png"));

  // Default: the run's own test split (1 image per class at these sizes).
  auto e = run_command(tlc_cmd("evaluate " + q(t.str("run/model.pt")) + " --json 2>/dev/null"));
  ASSERT_EQ(e.exit_code, 0) << e.out;
  auto j = json::parse(e.out);
  for (auto key : {"source", "count", "loss", "accuracy", "top_k", "top_k_accuracy", "classes", "per_class", "confusion",
                   "misclassified", "confusion_png", "misclassified_csv"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["count"], 3);
  auto metrics = json::parse(read_text(t.path() / "run" / "metrics.json"));
  EXPECT_NEAR(j["accuracy"].get<double>(), metrics["test"]["acc"].get<double>(), 1e-9);
  EXPECT_NEAR(j["loss"].get<double>(), metrics["test"]["loss"].get<double>(), 1e-4);

  // A folder with a known truth: every image of the data folder; the confusion rows sum to the class sizes.
  auto f = run_command(tlc_cmd("evaluate " + q(t.str("run/model.pt")) + " " + q(t.str("data")) + " --out " +
                               q(t.str("eval")) + " --json 2>/dev/null"));
  ASSERT_EQ(f.exit_code, 0) << f.out;
  auto k = json::parse(f.out);
  EXPECT_EQ(k["count"], 36);
  int64_t diagonal = 0;
  for (int c = 0; c < 3; ++c) {
    int64_t row = 0;
    for (int p = 0; p < 3; ++p) row += k["confusion"][c][p].get<int64_t>();
    EXPECT_EQ(row, 12);
    diagonal += k["confusion"][c][c].get<int64_t>();
    EXPECT_EQ(k["per_class"][c]["support"], 12);
  }
  EXPECT_NEAR(k["accuracy"].get<double>(), diagonal / 36.0, 1e-12);
  std::string mis = read_text(t.path() / "eval" / "misclassified.csv");
  EXPECT_EQ(mis.rfind("path,true_label,predicted_label,probability\n", 0), 0u);
  EXPECT_EQ(std::count(mis.begin(), mis.end(), '\n'), 1 + 36 - diagonal);
  cv::Mat cm = cv::imread(t.str("eval/confusion.png"));
  EXPECT_FALSE(cm.empty());
  auto text = run_command(tlc_cmd("evaluate " + q(t.str("run/model.pt")) + " " + q(t.str("data")) + " --out " + q(t.str("eval"))));
  EXPECT_NE(text.out.find("precision"), std::string::npos);
  EXPECT_NE(text.out.find("true\\pred"), std::string::npos);

  // predict --csv: header, one row per image, probabilities summing to 1; --show writes a contact sheet.
  auto p = run_command(tlc_cmd("predict " + q(t.str("run/model.pt")) + " " + q(t.str("data/line_blue")) + " --csv --show " +
                               q(t.str("sheet.png")) + " 2>/dev/null"));
  ASSERT_EQ(p.exit_code, 0) << p.out;
  EXPECT_EQ(p.out.rfind("path,label,probability,circle_red,line_blue,square_green,error\n", 0), 0u) << p.out;
  EXPECT_EQ(std::count(p.out.begin(), p.out.end(), '\n'), 13);
  cv::Mat sheet = cv::imread(t.str("sheet.png"));
  ASSERT_FALSE(sheet.empty());
  EXPECT_EQ(sheet.cols, 6 * 160);
  EXPECT_EQ(sheet.rows, 2 * (160 + 34));
}

TEST(Evaluate, InspectShowsOutputShapes) {
  auto r = run_command(tlc_cmd("inspect " + q(source("models/tiny_cnn.pt")) + " --image-size 20"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("[1, 8, 20, 20]"), std::string::npos) << r.out;   // first conv
  EXPECT_NE(r.out.find("[1, 8, 10, 10]"), std::string::npos) << r.out;   // after the pool
  EXPECT_NE(r.out.find("2 layers with parameters"), std::string::npos) << r.out;
}

TEST(Csv, FieldsAreQuotedOnlyWhenTheyMustBe) {
  EXPECT_EQ(tlc::csv_field("cat"), "cat");
  EXPECT_EQ(tlc::csv_field(""), "");
  EXPECT_EQ(tlc::csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(tlc::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(tlc::csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(tlc::csv_field("cr\r"), "\"cr\r\"");
}
