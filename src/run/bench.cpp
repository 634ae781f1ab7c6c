// `tlc bench`: the figures that matter for throughput, measured on this machine. Timings are medians over
// `iterations` repeats after one warm-up, so one noisy repeat does not decide the figure.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <ostream>

#include "tlc/backbone.h"
#include "tlc/calibration.h"
#include "tlc/dataset.h"
#include "tlc/error.h"
#include "tlc/gpu_decode.h"
#include "tlc/image_io.h"
#include "tlc/normalize.h"
#include "tlc/prefetch.h"
#include "tlc/run.h"
#include "tlc/trainer.h"
#include "tlc/subprocess.h"
#include "tlc/util.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "bench_peers_source.h"  // k_bench_peers_source: src/run/bench_peers.py, embedded by CMake

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

std::string ratio(double a, double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", a / b);
  return buf;
}

// The same backbone file, batch, size and threads on PyTorch and on OpenVINO's defaults, in a child Python
// (src/run/bench_peers.py): figures beside tlc's `backbone` figure, with tlc's ratio to each.
void bench_peers(const BenchOptions& opt, double tlc_rate, int threads, std::vector<BenchFigure>& figs,
                 std::ostream& log) {
  const std::string py = project_python();
  ChildResult r = run_child({py, "-c", k_bench_peers_source, opt.backbone_path, std::to_string(opt.batch_size),
                             std::to_string(opt.image_size), std::to_string(threads), std::to_string(opt.iterations)},
                            {"PYTHONSAFEPATH=1"}, /*capture=*/true);
  nlohmann::json j;
  const size_t brace = r.output.rfind("\n{");
  try {
    if (r.exit_code == 0) j = nlohmann::json::parse(r.output.substr(brace == std::string::npos ? 0 : brace + 1));
  } catch (const nlohmann::json::exception&) {
  }
  if (!j.is_object()) {
    log << "bench: no peers: " << py << " " << describe_child_end(r) << " (set TLC_PYTHON to a Python with torch "
        << "and openvino, or --no-peers)\n";
    return;
  }
  const std::string same = ", same file, batch " + std::to_string(opt.batch_size) + ", " +
                           std::to_string(opt.image_size) + "px, " + std::to_string(threads) + " threads; tlc is ";
  auto add = [&](const char* key, const std::string& name, const std::string& what) {
    if (!j.contains(key) || !j[key].is_number()) return;
    const double v = j[key].get<double>();
    figs.push_back({name, "img/s", what + same + ratio(tlc_rate, v) + " of it", v});
  };
  add("torch_fp32", "peer_torch_fp32", "PyTorch eager TorchScript fp32");
  add("torch_bf16", "peer_torch_bf16", "PyTorch eager bf16 autocast channels-last");
  add("openvino", "peer_openvino",
      "OpenVINO " + j.value("openvino_version", std::string("?")) + " defaults (" +
          j.value("openvino_precision", std::string("?")) + ")");
  if (j.contains("errors"))
    for (const auto& [k, v] : j["errors"].items()) log << "bench: peer " << k << " could not run: " << v << "\n";
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

  // 1b. The same on the GPU (nvJPEG + the resize kernel), batch_size images per call, when it is used.
  const c10::Device dev = resolve_device(opt.device);
  const DecodeBackend decode = parse_decode_backend(opt.decode);
  std::unique_ptr<GpuDecoder> gpu = open_gpu_decoder(decode, dev);
  if (gpu) {
    DecodeOptions dopt;
    dopt.size = size;
    std::vector<DecodeStatus> st(blobs.size());
    const size_t bs = static_cast<size_t>(opt.batch_size);
    t = median_seconds(opt.iterations, [&] {
      for (size_t b0 = 0; b0 < blobs.size(); b0 += bs) {
        std::vector<const std::vector<uint8_t>*> enc;
        for (size_t i = b0; i < std::min(blobs.size(), b0 + bs); ++i) enc.push_back(&blobs[i]);
        gpu->decode(enc, dopt, st.data() + b0, threads);
      }
    });
    const auto c = gpu->counts();
    figs.push_back({"decode_resize_gpu", "img/s",
                    source + ", nvJPEG " + gpu->backend() + " backend, batch " + std::to_string(bs) + ", " +
                        std::to_string(c.gpu) + " of " + std::to_string(c.gpu + c.cpu) +
                        " decodes on the GPU (the rest on the CPU path)",
                    static_cast<double>(blobs.size()) / t});
  }

  // 2. Normalize op: bytes read + written per second, as float32 NCHW (the form PyTorch's op chain gives) and
  // as bf16 channels-last (what the frozen backbone takes on a GPU).
  // Seeded: the same pixels every run, so that an int8 engine calibrated on them is made once, then cached.
  at::Tensor u8 = at::randint(0, 256, {opt.batch_size, opt.image_size, opt.image_size, 3},
                              at::make_generator<at::CPUGeneratorImpl>(7), at::TensorOptions(at::kByte)).to(dev);
  NormalizeSpec spec = NormalizeSpec::from_mode(NormalizeMode::minus1to1);
  auto sync = [&] {
    if (dev.is_cuda()) at::zeros({1}, at::TensorOptions().device(dev)).item<float>();
  };
  struct Form {
    const char* name;
    at::ScalarType dtype;
    Layout layout;
    const char* detail;
  };
  for (const Form& f : {Form{"normalize", at::kFloat, Layout::nchw, "u8 NHWC -> f32 NCHW"},
                        Form{"normalize_bf16_cl", at::kBFloat16, Layout::nhwc, "u8 NHWC -> bf16 channels-last"}}) {
    at::Tensor out = normalize(u8, spec, f.dtype, f.layout);
    // Many launches per timed repeat, so that the figure is the kernel's and not one launch's overhead.
    const int reps = dev.is_cuda() ? 50 : 1;
    t = median_seconds(opt.iterations * 4, [&] {
      for (int r = 0; r < reps; ++r) normalize_out(u8, spec, at::Tensor(), out);
      sync();
    });
    const double bytes = static_cast<double>(u8.numel()) * (1 + static_cast<double>(out.element_size())) * reps;
    figs.push_back({f.name, "GB/s", std::string(f.detail) + ", batch " + std::to_string(opt.batch_size) + ", " + dev.str(),
                    bytes / t / 1e9});
  }

  // 3. Frozen backbone forward + GAP, on the engine and precision training would use, from normalized input.
  if (opt.backbone_path.empty()) return figs;
  Backbone bb = Backbone::load(opt.backbone_path);
  bb.to(dev);
  bb.request_engine(engine_request(opt.engine, opt.precision, dev), size);
  if (bb.needs_calibration()) {
    // int8's ranges from the --images files when there are some; else from the random pixels, which time the
    // same but say nothing of accuracy.
    if (!opt.images_dir.empty()) {
      DecodeOptions copt;
      copt.size = size;
      int64_t used = 0;
      // The backbone's own normalization (the timed passes use minus1to1 pixels: the same cost).
      const std::string own = bb.info().normalize;
      const NormalizeSpec cspec = NormalizeSpec::from_mode(parse_normalize_mode(own.empty() ? "minus1to1" : own));
      const at::Tensor c = calibration_batch(list_image_folder(opt.images_dir, 1).items, copt, cspec, threads, &used);
      bb.set_calibration(c, std::to_string(used) + " images of " + opt.images_dir);
    } else {
      bb.set_calibration(normalize(u8.cpu(), spec, at::kFloat, Layout::nchw),
                         std::to_string(opt.batch_size) + " random images (timing only; --images calibrates on files)");
    }
  }
  log << "bench: " << bb.prepare_engine() << "\n";
  const at::ScalarType in_dtype = bb.frozen_dtype();
  const bool nhwc = bb.frozen_channels_last();
  auto input = [&](const at::Tensor& pixels) { return normalize(pixels, spec, in_dtype, nhwc ? Layout::nhwc : Layout::nchw); };
  const std::string what = bb.info().arch + " on " + bb.engine_name() + (nhwc ? " channels-last" : "") + ", batch " +
                           std::to_string(opt.batch_size) + ", " + std::to_string(size) + "px, " + dev.str();
  {
    at::Tensor x = input(u8);
    log << "bench: backbone " << what << "\n";
    t = median_seconds(opt.iterations, [&] {
      bb.pooled_features(x);
      sync();
    });
    // What the engine did in the runs (the CUDA-graph engine: captures and replays, or why graphs went off).
    const std::string status = bb.engine_status();
    figs.push_back({"backbone", "img/s", what + ", " + std::to_string(at::get_num_threads()) + " threads" +
                                             (status.empty() ? "" : "; " + status),
                    static_cast<double>(opt.batch_size) / t});
    if (opt.peers && dev.is_cpu()) bench_peers(opt, figs.back().value, at::get_num_threads(), figs, log);
  }

  // 4. The first pass as training makes it: image files on disk -> decoded batches (on the decoding threads,
  // ahead of use, pinned) -> normalize -> frozen features. Only with --images: files, not memory.
  if (opt.images_dir.empty()) return figs;
  ImageFolder folder = list_image_folder(opt.images_dir, 1);
  std::vector<std::string> paths;
  for (size_t i = 0; i < folder.items.size() && static_cast<int64_t>(paths.size()) < opt.images; ++i)
    paths.push_back(folder.items[i].path);
  DecodeOptions dopt;
  dopt.size = size;
  // On the CPU decoding threads (unless --decode gpu), and with the GPU decoder when it is used.
  std::vector<GpuDecoder*> decoders;
  if (decode != DecodeBackend::gpu) decoders.push_back(nullptr);
  if (gpu) decoders.push_back(gpu.get());
  for (GpuDecoder* g : decoders) {
    auto first_pass = [&] {
      at::NoGradGuard ng;
      std::vector<DecodeStatus> status;
      auto batches = prefetch_files(paths, opt.batch_size, dopt, threads, dev, status, g);
      for (int64_t k = 0; k < batches->count(); ++k) bb.pooled_features(input(batches->next()));
      sync();
    };
    t = median_seconds(std::min(opt.iterations, 3), first_pass);
    figs.push_back({g ? "first_pass_gpu_decode" : "first_pass", "img/s",
                    std::to_string(paths.size()) + " files from " + opt.images_dir + " -> features, " + what + ", " +
                        (g ? "nvJPEG " + g->backend() + " backend (CPU path for what it does not take) and " : "") +
                        std::to_string(threads) + " decoding threads",
                    static_cast<double>(paths.size()) / t});
  }
  return figs;
}

}  // namespace tlc
