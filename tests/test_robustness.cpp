// Robustness: interruptions and resume, training faults, bad images and folders, model-file mix-ups.
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include "test_util.h"

using namespace tlc_test;
using json = nlohmann::json;

namespace {


std::string train_args(const TempDir& t, const std::string& run) {
  return "train " + q(t.str("data")) + " --backbone " + q(source("models/tiny_cnn.pt")) + " --out " + q(t.str(run)) +
         " --image-size 16 --batch-size 8 --epochs 4 --fine-tune-layers 1 --fine-tune-epochs 2 --fine-tune-lr 0.002"
         " --optimizer adam --lr 0.01 --dropout 0.2 --augment flip --seed 11"
         // Exact equality after a resume needs deterministic kernels: the CPU's (cuDNN's backward is not).
         " --device cpu";
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
  std::string cmd = train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"),
                                      "--image-size 16 --epochs 100000 --cache-features off");
  // The signal goes once the first epoch line is out (the handler is in place by then, however long loading
  // LibTorch or CUDA takes on a busy machine); at most 60 s of waiting.
  const std::string log = t.str("log.txt");
  auto r = run_command("(" + cmd + " --device cpu > " + q(log) + " 2>&1 & pid=$!; for i in $(seq 600); do grep -q '^epoch 1/' " +
                       q(log) + " && break; sleep 0.1; done; kill -INT $pid; wait $pid; echo exit=$?; cat " + q(log) + ")");
  EXPECT_NE(r.out.find("exit=130"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tlc: stopped: interrupted in epoch"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(t.path() / "run" / "checkpoint.pt"));
  EXPECT_FALSE(fs::exists(t.path() / "run" / "model.pt"));
}

TEST(Robustness, NanLossStopsWithAClearMessage) {
  TempDir t;
  make_dataset(t.path() / "data", 2, 8, 16);
  auto r = run_command(train_cmd(t.str("data"), source("models/tiny_cnn.pt"), t.str("run"),
                                 "--image-size 16 --epochs 3 --optimizer sgd --lr 1e38"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("lower the learning rate"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("in epoch "), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(t.path() / "run" / "model.pt"));
}

namespace {

// A two-class folder of good PNGs plus whatever a test adds; trains with the tiny backbone.
struct BadFolder {
  TempDir t;
  fs::path data() const { return t.path() / "data"; }
  BadFolder() { make_dataset(data(), 2, 6, 16); }
  CommandResult train(const std::string& extra = "") const {
    return run_command(train_cmd(data().string(), source("models/tiny_cnn.pt"), t.str("run"),
                                 "--image-size 16 --epochs 1 --val-split 0 --test-split 0 " + extra));
  }
  std::string skipped() const { return read_text(t.path() / "run" / "skipped_files.tsv"); }
  int used() const { return json::parse(read_text(t.path() / "run" / "config.json"))["counts"]["train"]; }
};

std::vector<uint8_t> jpeg_bytes(int size = 32) {
  std::vector<uint8_t> b;
  cv::imencode(".jpg", class_image(0, size, 3), b);
  return b;
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) { write_text(p, std::string(b.begin(), b.end())); }

}  // namespace

TEST(Robustness, TruncatedJpegIsSkippedAndReported) {
  BadFolder f;
  auto b = jpeg_bytes(64);
  b.resize(b.size() / 2);
  write_bytes(f.data() / "circle_red" / "half.jpg", b);
  auto r = f.train();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("half.jpg: truncated JPEG"), std::string::npos) << r.out;
  EXPECT_NE(f.skipped().find("half.jpg\tundecodable"), std::string::npos);
  EXPECT_EQ(f.used(), 12);
}

TEST(Robustness, TruncatedPngZeroByteAndTextFilesAreSkippedQuietly) {
  BadFolder f;
  std::vector<uint8_t> png;
  cv::imencode(".png", class_image(1, 32, 9), png);
  png.resize(png.size() - 20);
  write_bytes(f.data() / "square_green" / "cut.png", png);
  write_text(f.data() / "square_green" / "empty.png", "");
  write_text(f.data() / "circle_red" / "readme.jpg", "I am text\n");
  auto r = f.train();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (auto name : {"cut.png", "empty.png", "readme.jpg"}) EXPECT_NE(f.skipped().find(name), std::string::npos) << name;
  EXPECT_EQ(r.out.find("libpng"), std::string::npos) << r.out;  // no decoder noise on the terminal
  EXPECT_EQ(f.used(), 12);
  auto strict = f.train("--strict --overwrite");  // the same run folder again: replacing it is asked for
  EXPECT_NE(strict.exit_code, 0);
  EXPECT_NE(strict.out.find("--strict"), std::string::npos) << strict.out;
}

TEST(Robustness, JpegWithCorruptButDecodableDataIsUsedWithAWarning) {
  BadFolder f;
  auto b = jpeg_bytes(32);
  const uint8_t junk[] = {0x12, 0x34, 0x56};
  b.insert(b.end() - 2, junk, junk + 3);  // extraneous bytes before the EOI marker
  write_bytes(f.data() / "circle_red" / "odd.jpg", b);
  // libjpeg-turbo's warning: a GPU-decoded file (--decode auto on CUDA) is used without one (docs/GPU.md).
  auto r = f.train("--decode cpu");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(f.used(), 13);
  EXPECT_NE(f.skipped().find("odd.jpg\tused, decoder warning"), std::string::npos) << f.skipped();
  EXPECT_NE(r.out.find("1 image(s) decoded with warnings"), std::string::npos) << r.out;
}

TEST(Robustness, CmykJpegSixteenBitPngAndOnePixelImagesAreUsed) {
  BadFolder f;
  std::string py = f.t.str("cmyk.py");
  write_text(py, "import sys\nfrom PIL import Image\nImage.new('CMYK', (20, 20), (0, 255, 255, 0)).save(sys.argv[1])\n");
  auto c = run_command(q(TLC_PYTHON) + " " + q(py) + " " + q((f.data() / "circle_red" / "cmyk.jpg").string()));
  ASSERT_EQ(c.exit_code, 0) << c.out;
  cv::imwrite((f.data() / "circle_red" / "deep.png").string(), cv::Mat(9, 9, CV_16UC3, cv::Scalar(1000, 20000, 60000)));
  cv::imwrite((f.data() / "square_green" / "dot.png").string(), cv::Mat(1, 1, CV_8UC3, cv::Scalar(0, 255, 0)));
  auto r = f.train();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(f.used(), 15);
  EXPECT_EQ(r.out.find("undecodable"), std::string::npos) << r.out;
}

TEST(Robustness, ImagesAboveThePixelLimitAreRefused) {
  BadFolder f;
  cv::imwrite((f.data() / "circle_red" / "big.png").string(), cv::Mat(300, 400, CV_8UC3, cv::Scalar(1, 2, 3)));
  auto r = f.train("--max-pixels 100000");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("big.png: image is 400x300, above the limit"), std::string::npos) << r.out;
  EXPECT_EQ(f.used(), 12);
}

TEST(Robustness, SymlinkLoopsDoNotHangTheListing) {
  BadFolder f;
  fs::create_directory_symlink("..", f.data() / "circle_red" / "loop");
  fs::create_symlink("self.jpg", f.data() / "square_green" / "self.jpg");
  auto r = f.train();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(f.used(), 12);
  EXPECT_NE(f.skipped().find("self.jpg\tundecodable"), std::string::npos) << f.skipped();
}

TEST(Robustness, OddFileNamesAreUsed) {
  BadFolder f;
  for (std::string name : std::vector<std::string>{"with space.png", "quote's \"x\".png", "bad\xff\xfe utf8.png", "comma,name.png"})
    cv::imwrite((f.data() / "circle_red" / name).string(), class_image(0, 16, static_cast<uint32_t>(name.size())));
  auto r = f.train();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(f.used(), 16);
  auto p = run_command(tlc_cmd("predict " + q(f.t.str("run/model.pt")) + " " + q(f.data().string() + "/circle_red") + " --json"));
  EXPECT_EQ(p.exit_code, 0) << p.out;
  EXPECT_NO_THROW(json::parse(p.out.substr(p.out.find('['))));
}

TEST(Robustness, DatasetShapeErrorsAndWarnings) {
  {  // Empty class folders are dropped; fewer than two classes left is an error.
    TempDir t;
    make_dataset(t.path(), 1, 4, 16);
    fs::create_directories(t.path() / "empty");
    auto r = run_command(tlc_cmd("train " + q(t.str()) + " --backbone " + q(source("models/tiny_cnn.pt"))));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.out.find("at least 2"), std::string::npos) << r.out;
  }
  {  // A class too small for the split: the numbers and the way out.
    BadFolder f;
    fs::create_directories(f.data() / "tiny");
    cv::imwrite((f.data() / "tiny" / "a.png").string(), class_image(2, 16, 1));
    auto r = run_command(tlc_cmd("train " + q(f.data().string()) + " --backbone " + q(source("models/tiny_cnn.pt"))));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.out.find("class 'tiny' has 1 image(s)"), std::string::npos) << r.out;
  }
  {  // Very unbalanced classes: a warning naming --class-weights.
    BadFolder f;
    for (int i = 0; i < 60; ++i)
      cv::imwrite((f.data() / "circle_red" / ("more" + std::to_string(i) + ".png")).string(), class_image(0, 16, 900 + i));
    auto r = f.train();
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("very unbalanced"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--class-weights auto"), std::string::npos) << r.out;
  }
}

TEST(Robustness, ModelFileMixUps) {
  BadFolder f;
  ASSERT_EQ(f.train().exit_code, 0);
  // A model used on a folder with other classes.
  TempDir other;
  make_dataset(other.path(), 3, 3, 16);
  auto e = run_command(tlc_cmd("evaluate " + q(f.t.str("run/model.pt")) + " " + q(other.str())));
  EXPECT_NE(e.exit_code, 0);
  EXPECT_NE(e.out.find("but the model (or the training folder) has [circle_red, square_green]"), std::string::npos) << e.out;
  // A truncated model.pt and a backbone given where a model is expected.
  std::string bytes = read_text(f.t.path() / "run" / "model.pt");
  write_text(f.t.path() / "cut.pt", bytes.substr(0, 1000));
  auto p = run_command(tlc_cmd("predict " + q(f.t.str("cut.pt")) + " " + q(f.data().string() + "/circle_red/img0.png")));
  EXPECT_NE(p.exit_code, 0);
  EXPECT_NE(p.out.find("cannot be loaded"), std::string::npos) << p.out;
  auto b = run_command(tlc_cmd("predict " + q(source("models/tiny_cnn.pt")) + " " + q(f.data().string() + "/circle_red/img0.png")));
  EXPECT_NE(b.exit_code, 0);
  EXPECT_NE(b.out.find("not a tlc model"), std::string::npos) << b.out;
}
