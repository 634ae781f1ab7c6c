#pragma once
// Helpers shared by the test files: temporary folders, generated images, running the CLI.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>

namespace tlc_test {

namespace fs = std::filesystem;

// A fresh folder under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("tlc_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string str(const std::string& sub = "") const { return sub.empty() ? path_.string() : (path_ / sub).string(); }

 private:
  fs::path path_;
};

inline void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

// A BGR image for cv::imwrite: a coloured shape on a noisy background. Class k has its own colour and shape,
// so classes are separable by colour alone.
inline cv::Mat class_image(int k, int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(0, 60), pos(size / 4, size - size / 4);
  static const cv::Scalar colours[] = {cv::Scalar(40, 40, 230), cv::Scalar(40, 220, 40), cv::Scalar(230, 60, 40)};
  // A background tinted towards the class colour, with noise, so that even global colour statistics differ.
  cv::Mat img(size, size, CV_8UC3);
  const cv::Scalar& tint = colours[k % 3];
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      img.at<cv::Vec3b>(y, x) = cv::Vec3b(cv::saturate_cast<uint8_t>(tint[0] * 0.4 + noise(rng)),
                                          cv::saturate_cast<uint8_t>(tint[1] * 0.4 + noise(rng)),
                                          cv::saturate_cast<uint8_t>(tint[2] * 0.4 + noise(rng)));
  cv::Point c(pos(rng), pos(rng));
  int r = size / 4;
  if (k % 3 == 0) cv::circle(img, c, r, colours[k % 3], -1);
  else if (k % 3 == 1) cv::rectangle(img, c - cv::Point(r, r), c + cv::Point(r, r), colours[k % 3], -1);
  else cv::line(img, c - cv::Point(r, r), c + cv::Point(r, r), colours[k % 3], std::max(2, size / 8));
  return img;
}

// Writes `per_class` PNGs per class under root/<class_k>/; returns the class names.
inline std::vector<std::string> make_dataset(const fs::path& root, int classes, int per_class, int size,
                                             uint32_t seed = 1) {
  std::vector<std::string> names;
  const char* base[] = {"circle_red", "square_green", "line_blue"};
  for (int k = 0; k < classes; ++k) {
    names.push_back(base[k % 3]);
    fs::create_directories(root / names.back());
    for (int i = 0; i < per_class; ++i)
      cv::imwrite((root / names.back() / ("img" + std::to_string(i) + ".png")).string(),
                  class_image(k, size, seed * 100003u + k * 1009u + i));
  }
  return names;
}

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen(("(" + cmd + ") 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline std::string tlc_cmd(const std::string& args) { return std::string("'") + TLC_BINARY + "' " + args; }
// A path quoted for the shell (test paths hold no single quotes).
inline std::string q(const std::string& s) { return "'" + s + "'"; }
// `tlc train DATA --backbone BACKBONE --out OUT EXTRA`, quoted for the shell.
inline std::string train_cmd(const std::string& data, const std::string& backbone, const std::string& out,
                             const std::string& extra = "") {
  return tlc_cmd("train " + q(data) + " --backbone " + q(backbone) + " --out " + q(out) + (extra.empty() ? "" : " " + extra));
}
inline std::string source(const std::string& rel) { return std::string(TLC_SOURCE_DIR) + "/" + rel; }
inline std::string test_model(const std::string& name) { return std::string(TLC_TEST_MODELS) + "/" + name; }

inline std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace tlc_test
