#include "tlc/plots.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tlc/error.h"
#include "tlc/text.h"
#include "tlc/util.h"

namespace tlc {
namespace {

const cv::Scalar kWhite(255, 255, 255), kBlack(0, 0, 0), kGrey(200, 200, 200);
const cv::Scalar kTrain(180, 119, 31), kVal(14, 127, 255), kMark(60, 60, 200);  // BGR: blue, orange, red

void save_png(const cv::Mat& img, const std::string& path) {
  save_atomic(path, [&](const std::string& tmp) {
    std::vector<uint8_t> buf;
    if (!cv::imencode(".png", img, buf)) throw Error("could not encode " + path);
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f || std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) {
      if (f) std::fclose(f);
      throw Error("could not write " + path);
    }
    if (std::fclose(f) != 0) throw Error("could not write " + path);
  });
}

// OpenCV's built-in (Hershey) fonts have only ASCII glyphs and draw anything else as "?": labels are
// transliterated instead (see transliterate_ascii). A TrueType font would need OpenCV's contrib modules
// (freetype) and a font with every script, a heavy dependency for a label.
void text(cv::Mat& img, const std::string& s, cv::Point at, double scale = 0.45, cv::Scalar colour = kBlack) {
  cv::putText(img, transliterate_ascii(s), at, cv::FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv::LINE_AA);
}

int text_width(const std::string& s, double scale) {
  int baseline = 0;
  return cv::getTextSize(transliterate_ascii(s), cv::FONT_HERSHEY_SIMPLEX, scale, 1, &baseline).width;
}

std::string num(double v, int prec) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

// One panel: axes, ticks, two series and a legend inside `r`.
void panel(cv::Mat& img, cv::Rect r, const std::string& title, const std::string& ylabel,
           const std::vector<double>& xs, const std::vector<double>& a, const std::vector<double>& b, int mark_epoch,
           bool legend_low) {
  const cv::Rect plot(r.x + 60, r.y + 35, r.width - 80, r.height - 85);
  double lo = 1e300, hi = -1e300;
  for (const auto* s : {&a, &b})
    for (double v : *s)
      if (std::isfinite(v)) { lo = std::min(lo, v); hi = std::max(hi, v); }
  if (lo > hi) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
  const double pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const double x0 = xs.empty() ? 0 : xs.front(), x1 = xs.empty() ? 1 : std::max(xs.back(), x0 + 1);
  auto px = [&](double x, double y) {
    return cv::Point(plot.x + static_cast<int>((x - x0) / (x1 - x0) * plot.width),
                     plot.y + plot.height - static_cast<int>((y - lo) / (hi - lo) * plot.height));
  };
  text(img, title, cv::Point(r.x + r.width / 2 - 40, r.y + 20), 0.6);
  // Enough decimals that neighbouring ticks differ.
  const int prec = std::max(2, static_cast<int>(std::ceil(-std::log10((hi - lo) / 4))) + 1);
  for (int k = 0; k <= 4; ++k) {  // horizontal grid and y ticks
    double y = lo + (hi - lo) * k / 4;
    cv::Point p = px(x0, y);
    cv::line(img, cv::Point(plot.x, p.y), cv::Point(plot.x + plot.width, p.y), kGrey, 1);
    text(img, num(y, prec), cv::Point(r.x + 4, p.y + 4), 0.38);
  }
  const int nx = static_cast<int>(x1 - x0);
  const int step = std::max(1, nx / 8);
  for (int e = static_cast<int>(x0); e <= static_cast<int>(x1); e += step) {
    cv::Point p = px(e, lo);
    cv::line(img, p, p + cv::Point(0, 4), kBlack, 1);
    text(img, std::to_string(e), p + cv::Point(-4, 18), 0.4);
  }
  cv::rectangle(img, plot, kBlack, 1);
  text(img, "epoch", cv::Point(plot.x + plot.width / 2 - 20, r.y + r.height - 12), 0.5);
  text(img, ylabel, cv::Point(r.x + 4, plot.y - 8), 0.45);
  if (mark_epoch > 0) {
    cv::Point top = px(mark_epoch - 0.5, hi), bottom = px(mark_epoch - 0.5, lo);
    for (int y = top.y; y < bottom.y; y += 10) cv::line(img, cv::Point(top.x, y), cv::Point(top.x, std::min(y + 5, bottom.y)), kMark, 2);
    text(img, "fine-tuning", bottom + cv::Point(4, -8), 0.4, kMark);
  }
  auto series = [&](const std::vector<double>& s, cv::Scalar colour) {
    for (size_t i = 0; i < s.size(); ++i) {
      if (!std::isfinite(s[i])) continue;
      cv::circle(img, px(xs[i], s[i]), 3, colour, -1, cv::LINE_AA);
      if (i + 1 < s.size() && std::isfinite(s[i + 1]))
        cv::line(img, px(xs[i], s[i]), px(xs[i + 1], s[i + 1]), colour, 2, cv::LINE_AA);
    }
  };
  series(a, kTrain);
  series(b, kVal);
  // Legend where the curves usually are not: low for accuracy (it rises), high for loss (it falls).
  cv::Point lg(plot.x + plot.width - 130, legend_low ? plot.y + plot.height - 50 : plot.y + 10);
  cv::rectangle(img, cv::Rect(lg.x - 5, lg.y - 5, 130, 44), kWhite, -1);
  cv::rectangle(img, cv::Rect(lg.x - 5, lg.y - 5, 130, 44), kBlack, 1);
  cv::line(img, lg + cv::Point(0, 8), lg + cv::Point(25, 8), kTrain, 2);
  text(img, "training", lg + cv::Point(32, 12));
  cv::line(img, lg + cv::Point(0, 28), lg + cv::Point(25, 28), kVal, 2);
  text(img, "validation", lg + cv::Point(32, 32));
}

}  // namespace

void plot_curves(const std::vector<EpochStats>& history, const std::string& path) {
  cv::Mat img(kCurvesHeight, kCurvesWidth, CV_8UC3, kWhite);
  std::vector<double> xs, acc, val_acc, loss, val_loss;
  int mark = 0;
  for (const auto& s : history) {
    xs.push_back(s.epoch);
    acc.push_back(s.acc);
    val_acc.push_back(s.val_acc);
    loss.push_back(s.loss);
    val_loss.push_back(s.val_loss);
    if (s.phase != "head" && mark == 0) mark = s.epoch;
  }
  panel(img, cv::Rect(0, 0, kCurvesWidth / 2, kCurvesHeight), "Accuracy", "acc", xs, acc, val_acc, mark, true);
  panel(img, cv::Rect(kCurvesWidth / 2, 0, kCurvesWidth / 2, kCurvesHeight), "Loss", "loss", xs, loss, val_loss, mark, false);
  save_png(img, path);
}

void plot_confusion(const Evaluation& e, const std::vector<std::string>& classes, const std::string& path) {
  const int K = static_cast<int>(classes.size());
  const int cell = std::max(28, std::min(80, 640 / std::max(1, K)));
  const int left = 150, top = 60;
  // Wide enough for the title too (with two classes the matrix alone is narrower than it).
  const std::string title = "Confusion matrix (rows: true class, columns: predicted)";
  const int width = std::max(left + K * cell + 20, text_width(title, 0.5) + 20);
  cv::Mat img(top + K * cell + 130, width, CV_8UC3, kWhite);
  int64_t mx = 1;
  for (const auto& row : e.confusion)
    for (auto v : row) mx = std::max(mx, v);
  text(img, title, cv::Point(10, 25), 0.5);
  for (int t = 0; t < K; ++t) {
    for (int p = 0; p < K; ++p) {
      const double f = static_cast<double>(e.confusion[t][p]) / static_cast<double>(mx);
      cv::Scalar fill(255 - 200 * f, 255 - 120 * f, 255 - 30 * f);
      cv::Rect c(left + p * cell, top + t * cell, cell, cell);
      cv::rectangle(img, c, fill, -1);
      cv::rectangle(img, c, kGrey, 1);
      text(img, std::to_string(e.confusion[t][p]), cv::Point(c.x + cell / 2 - 8, c.y + cell / 2 + 5), 0.45,
           f > 0.6 ? kWhite : kBlack);
    }
    text(img, transliterate_ascii(classes[t]).substr(0, 18), cv::Point(8, top + t * cell + cell / 2 + 5), 0.45);
  }
  for (int p = 0; p < K; ++p) {  // column labels, rotated by drawing into a transposed strip
    cv::Mat strip(cell, 120, CV_8UC3, kWhite);
    text(strip, transliterate_ascii(classes[p]).substr(0, 14), cv::Point(4, cell / 2 + 5), 0.45);
    cv::Mat rot;
    cv::rotate(strip, rot, cv::ROTATE_90_COUNTERCLOCKWISE);
    rot.copyTo(img(cv::Rect(left + p * cell, top + K * cell + 5, cell, 120)));
  }
  save_png(img, path);
}

void write_contact_sheet(const at::Tensor& images_u8, const std::vector<std::string>& captions, const std::string& path) {
  at::Tensor imgs = images_u8.to(at::kCPU).contiguous();
  const int n = static_cast<int>(imgs.size(0));
  const int tile = 160, cap = 34, cols = std::max(1, std::min(n, 6));
  const int rows = (n + cols - 1) / cols;
  bool transliterated = false;
  std::vector<std::string> shown;
  for (const auto& c : captions) {
    bool changed = false;
    shown.push_back(transliterate_ascii(c, &changed));
    transliterated = transliterated || changed;
  }
  const std::string note = "labels transliterated to ASCII (the font has no other letters)";
  const int footer = transliterated ? 22 : 0;
  cv::Mat sheet(std::max(1, rows) * (tile + cap) + footer, std::max(cols * tile, transliterated ? text_width(note, 0.42) + 8 : 0),
                CV_8UC3, kWhite);
  for (int i = 0; i < n; ++i) {
    cv::Mat rgb(static_cast<int>(imgs.size(1)), static_cast<int>(imgs.size(2)), CV_8UC3, imgs[i].data_ptr<uint8_t>());
    cv::Mat bgr, scaled;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    cv::resize(bgr, scaled, cv::Size(tile, tile), 0, 0, rgb.cols < tile ? cv::INTER_NEAREST : cv::INTER_AREA);
    const int x = (i % cols) * tile, y = (i / cols) * (tile + cap);
    scaled.copyTo(sheet(cv::Rect(x, y, tile, tile)));
    // Two lines of 22 characters: split at a '\n' in the caption, else where the first line is full.
    const std::string& c = i < static_cast<int>(shown.size()) ? shown[i] : "";
    const size_t nl = c.find('\n');
    const std::string first = nl == std::string::npos ? c.substr(0, 22) : c.substr(0, std::min<size_t>(nl, 22));
    const std::string second = nl == std::string::npos ? (c.size() > 22 ? c.substr(22, 22) : "") : c.substr(nl + 1, 22);
    text(sheet, first, cv::Point(x + 4, y + tile + 14), 0.42);
    if (!second.empty()) text(sheet, second, cv::Point(x + 4, y + tile + 29), 0.42);
  }
  if (transliterated) text(sheet, note, cv::Point(4, sheet.rows - 7), 0.42, kMark);
  save_png(sheet, path);
}

}  // namespace tlc
