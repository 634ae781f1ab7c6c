// `tlc bench`: the figures that matter for throughput, measured on this machine. Timings are medians over
// `iterations` repeats after one warm-up, so one noisy repeat does not decide the figure.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <ostream>

#include "tlc/backbone.h"
#include "tlc/dataset.h"
#include "tlc/error.h"
#include "tlc/image_io.h"
#include "tlc/normalize.h"
#include "tlc/run.h"
#include "tlc/trainer.h"
#include "tlc/util.h"

#include <filesystem>

namespace tlc {
namespace {

template <typename F>
double median_seconds(int iterations, F&& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < std::max(1, iterations); ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Photo-like 500x375 JPEGs (smooth gradients and shapes, not noise, so the codec works as on photos).
std::vector<std::vector<uint8_t>> synthetic_jpegs(int64_t n) {
  std::vector<std::vector<uint8_t>> out;
  Rng rng(1234);
  for (int64_t i = 0; i < n; ++i) {
    cv::Mat img(375, 500, CV_8UC3);
    for (int y = 0; y < img.rows; ++y)
      for (int x = 0; x < img.cols; ++x)
        img.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>((x + i * 7) % 256), static_cast<uint8_t>((y * 2) % 256),
                                            static_cast<uint8_t>((x + y) / 4 % 256));
    for (int k = 0; k < 6; ++k)
      cv::circle(img, cv::Point(static_cast<int>(rng.below(500)), static_cast<int>(rng.below(375))),
                 10 + static_cast<int>(rng.below(80)),
                 cv::Scalar(static_cast<double>(rng.below(256)), static_cast<double>(rng.below(256)),
                            static_cast<double>(rng.below(256))),
                 -1, cv::LINE_AA);
    cv::GaussianBlur(img, img, cv::Size(5, 5), 0);
    std::vector<uint8_t> buf;
    cv::imencode(".jpg", img, buf, {cv::IMWRITE_JPEG_QUALITY, 90});
    out.push_back(std::move(buf));
  }
  return out;
}

}  // namespace

std::vector<BenchFigure> run_bench(const BenchOptions& opt, std::ostream& log) {
  std::vector<BenchFigure> figs;
  const int threads = resolve_threads(opt.threads);
  const int size = static_cast<int>(opt.image_size);

  // 1. Decode + resize from memory (file reading excluded), on all decoding threads.
  std::vector<std::vector<uint8_t>> blobs;
  std::string source;
  if (!opt.images_dir.empty()) {
    ImageFolder f = list_image_folder(opt.images_dir, 1);
    for (size_t i = 0; i < f.items.size() && static_cast<int64_t>(blobs.size()) < opt.images; ++i) {
      std::vector<uint8_t> b;
      if (read_file_bytes(f.items[i].path, b, nullptr)) blobs.push_back(std::move(b));
    }
    source = std::to_string(blobs.size()) + " files from " + opt.images_dir;
  } else {
    blobs = synthetic_jpegs(opt.images);
    source = std::to_string(blobs.size()) + " synthetic 500x375 JPEGs";
  }
  if (blobs.empty()) throw Error("no images to benchmark decoding with");
  log << "bench: decode+resize of " << source << " to " << size << "x" << size << " on " << threads << " threads\n";
  std::vector<uint8_t> dst(blobs.size() * size * size * 3);
  double t = 0;
  // With libjpeg-turbo's reduced (DCT-scaled) decoding, as tlc decodes, and without it, for the ratio.
  for (bool reduced : {true, false}) {
    DecodeOptions dopt;
    dopt.size = size;
    dopt.reduced_jpeg_decode = reduced;
    t = median_seconds(opt.iterations, [&] {
      parallel_for(blobs.size(), threads, [&](size_t i) {
        decode_resized(blobs[i].data(), blobs[i].size(), dst.data() + i * size * size * 3, dopt);
      });
    });
    figs.push_back({reduced ? "decode_resize" : "decode_full", "img/s",
                    source + ", " + std::to_string(threads) + " threads" +
                        (reduced ? "" : ", JPEG decoded at full size before resizing"),
                    static_cast<double>(blobs.size()) / t});
  }

  // 2. Normalize op: bytes read + written per second.
  const c10::Device dev = resolve_device(opt.device);
  at::Tensor u8 = at::randint(0, 256, {opt.batch_size, opt.image_size, opt.image_size, 3}, at::kByte).to(dev);
  NormalizeSpec spec = NormalizeSpec::from_mode(NormalizeMode::minus1to1);
  auto sync = [&] {
    if (dev.is_cuda()) at::zeros({1}, at::TensorOptions().device(dev)).item<float>();
  };
  t = median_seconds(opt.iterations * 4, [&] {
    normalize(u8, spec, at::kFloat, Layout::nchw);
    sync();
  });
  const double bytes = static_cast<double>(u8.numel()) * (1 + 4);
  figs.push_back({"normalize", "GB/s", "u8 NHWC -> f32 NCHW, batch " + std::to_string(opt.batch_size) + ", " + dev.str(),
                  bytes / t / 1e9});

  // 3. Frozen backbone forward + GAP.
  if (!opt.backbone_path.empty()) {
    Backbone bb = Backbone::load(opt.backbone_path);
    bb.to(dev);
    at::Tensor x = normalize(u8, spec, at::kFloat, Layout::nchw);
    log << "bench: backbone " << bb.info().arch << " forward at batch " << opt.batch_size << ", " << size << "px\n";
    t = median_seconds(opt.iterations, [&] {
      bb.pooled_features(x);
      sync();
    });
    figs.push_back({"backbone", "img/s",
                    bb.info().arch + " fp32, batch " + std::to_string(opt.batch_size) + ", " + std::to_string(size) +
                        "px, " + dev.str() + ", " + std::to_string(at::get_num_threads()) + " torch threads",
                    static_cast<double>(opt.batch_size) / t});
  }
  return figs;
}

}  // namespace tlc
