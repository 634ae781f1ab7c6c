#include "tlc/image_set.h"

#include <ATen/ATen.h>

#include <cmath>
#include <mutex>
#include <opencv2/core.hpp>

#include "tlc/error.h"
#include "tlc/gpu_decode.h"
#include "tlc/interrupt.h"
#include "tlc/prefetch.h"
#include "tlc/util.h"
#include "resize.h"

namespace tlc {

ImageSet ImageSet::scan(const std::vector<ImageItem>& items, const DecodeOptions& opt, int threads,
                        int64_t memory_budget_bytes, bool strict, ScanReport& report, const ChunkSink& sink) {
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t per = static_cast<int64_t>(opt.size) * opt.size * 3;
  const bool keep = n * per <= memory_budget_bytes;
  at::Tensor all = at::empty({keep ? n : 1, opt.size, opt.size, 3}, at::kByte);
  std::vector<DecodeStatus> status(n);
  // Decodes items [b, e): into `all` when the set stays in memory, else into `chunk_buf` (rows from b) when
  // a sink wants the pixels, else only to check them.
  auto decode_range = [&](int64_t b, int64_t e, uint8_t* chunk_buf) {
    parallel_for(static_cast<size_t>(e - b), threads, [&](size_t j) {
      const int64_t i = b + static_cast<int64_t>(j);
      check_interrupt("decoding images");
      thread_local std::vector<uint8_t> tmp;
      uint8_t* dst;
      if (keep) {
        dst = all.data_ptr<uint8_t>() + i * per;
      } else if (chunk_buf) {
        dst = chunk_buf + static_cast<int64_t>(j) * per;
      } else {
        tmp.resize(per);
        dst = tmp.data();
      }
      status[i] = load_resized(items[i].path, dst, opt);
    });
  };
  // A chunk decoded on the GPU: its decodable rows stay on the device for the sink, and are copied down into
  // the set's pixels when it stays in memory.
  auto gpu_chunk = [&](int64_t b, int64_t e) {
    std::vector<std::string> paths;
    for (int64_t i = b; i < e; ++i) paths.push_back(items[i].path);
    check_interrupt("decoding images");
    at::Tensor dec = sink.gpu->decode_files(paths.data(), paths.size(), opt, status.data() + b, threads);
    std::vector<int64_t> good;
    for (int64_t i = b; i < e; ++i)
      if (status[i].ok) good.push_back(i - b);
    if (keep) all.narrow(0, b, e - b).copy_(dec.cpu());
    return good.size() == paths.size() ? dec : dec.index_select(0, at::tensor(good, at::kLong).to(dec.device()));
  };
  if (!sink.fn) {
    decode_range(0, n, nullptr);
  } else {
    const int64_t chunk = std::max<int64_t>(1, sink.chunk);
    Prefetcher chunks(
        (n + chunk - 1) / chunk,
        [&](int64_t k, bool pinned) {
          const int64_t b = k * chunk, e = std::min(n, b + chunk);
          if (sink.gpu) return gpu_chunk(b, e);
          at::Tensor buf;
          if (!keep) buf = at::empty({e - b, opt.size, opt.size, 3}, at::kByte);
          decode_range(b, e, keep ? nullptr : buf.data_ptr<uint8_t>());
          std::vector<int64_t> good;
          for (int64_t i = b; i < e; ++i)
            if (status[i].ok) good.push_back(keep ? i : i - b);
          at::Tensor out = at::empty({static_cast<int64_t>(good.size()), opt.size, opt.size, 3},
                                     at::TensorOptions().dtype(at::kByte).pinned_memory(pinned));
          at::index_select_out(out, keep ? all : buf, 0, at::tensor(good, at::kLong));
          return out;
        },
        sink.device);
    for (int64_t k = 0; k < chunks.count(); ++k) sink.fn(chunks.next(), std::min(n, (k + 1) * chunk), n);
  }
  ImageSet s;
  s.opt_ = opt;
  s.threads_ = threads;
  std::vector<int64_t> good;
  for (int64_t i = 0; i < n; ++i) {
    if (!status[i].ok) {
      report.broken.push_back({items[i].path, status[i].error});
      continue;
    }
    if (!status[i].warning.empty()) report.warnings.push_back({items[i].path, status[i].warning});
    good.push_back(i);
    s.items_.push_back(items[i]);
  }
  if (strict && !report.broken.empty())
    throw Error(std::to_string(report.broken.size()) + " file(s) could not be decoded, first: " +
                report.broken[0].path + " (" + report.broken[0].reason + "); remove them or drop --strict to skip them");
  if (keep) {
    s.pixels_ = static_cast<int64_t>(good.size()) == n ? all : all.index_select(0, at::tensor(good, at::kLong));
  }
  return s;
}

ImageSet ImageSet::on_demand(std::vector<ImageItem> items, const DecodeOptions& opt, int threads) {
  ImageSet s;
  s.items_ = std::move(items);
  s.opt_ = opt;
  s.threads_ = threads;
  return s;
}

at::Tensor ImageSet::batch(const std::vector<int64_t>& idx, bool pinned) const {
  const int64_t per = static_cast<int64_t>(opt_.size) * opt_.size * 3;
  at::Tensor out = at::empty({static_cast<int64_t>(idx.size()), opt_.size, opt_.size, 3},
                             at::TensorOptions().dtype(at::kByte).pinned_memory(pinned));
  if (pixels_.defined()) {
    at::index_select_out(out, pixels_, 0, at::tensor(idx, at::kLong));
    return out;
  }
  std::vector<DecodeStatus> st(idx.size());
  parallel_for(idx.size(), threads_, [&](size_t k) {
    st[k] = load_resized(items_.at(idx[k]).path, out.data_ptr<uint8_t>() + static_cast<int64_t>(k) * per, opt_);
  });
  for (size_t k = 0; k < idx.size(); ++k)
    if (!st[k].ok)
      throw Error("image " + items_[idx[k]].path + " decoded earlier in this run but not now (" + st[k].error +
                  "); was the data folder changed while training?");
  return out;
}

at::Tensor ImageSet::labels(const std::vector<int64_t>& idx) const {
  std::vector<int64_t> l;
  l.reserve(idx.size());
  for (auto i : idx) l.push_back(items_.at(i).label);
  return at::tensor(l, at::kLong);
}

namespace {

void check_images(const at::Tensor& t, const char* what) {
  if (t.scalar_type() != at::kByte || t.dim() != 4 || t.size(3) != 3)
    throw Error(std::string(what) + ": expected uint8 images [N,H,W,3] (RGB), got " + std::string(t.dtype().name()) +
                " of shape " + c10::str(t.sizes()) + "; convert with np.asarray(x, dtype=np.uint8)");
}

}  // namespace

at::Tensor resize_images(const at::Tensor& images_u8, int size, ResizeMode mode) {
  check_images(images_u8, "resize_images");
  at::Tensor src = images_u8.cpu().contiguous();
  const int64_t n = src.size(0), h = src.size(1), w = src.size(2);
  if (h == size && w == size) return src;
  at::Tensor out = at::empty({n, size, size, 3}, at::kByte);
  const int64_t in_per = h * w * 3, out_per = static_cast<int64_t>(size) * size * 3;
  parallel_for(static_cast<size_t>(n), 0, [&](size_t i) {
    const cv::Mat rgb(static_cast<int>(h), static_cast<int>(w), CV_8UC3,
                      src.data_ptr<uint8_t>() + static_cast<int64_t>(i) * in_per);
    resize_to_square(rgb, size, mode, out.data_ptr<uint8_t>() + static_cast<int64_t>(i) * out_per);
  });
  return out;
}

void ImageSet::set_weights(std::vector<float> weights) {
  if (weights.empty()) {
    weights_.clear();
    return;
  }
  if (static_cast<int64_t>(weights.size()) != size())
    throw Error("sample weights: " + std::to_string(weights.size()) + " weights for " + std::to_string(size()) +
                " images; give one weight per image");
  double total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!std::isfinite(weights[i]) || weights[i] < 0)
      throw Error("sample weights: weight " + std::to_string(i) + " of " + items_[i].path + " is " +
                  std::to_string(weights[i]) + "; weights must be finite and >= 0");
    total += weights[i];
  }
  if (total <= 0) throw Error("sample weights: all weights are 0; give at least one image a positive weight");
  weights_ = std::move(weights);
}

at::Tensor ImageSet::weights(const std::vector<int64_t>& idx) const {
  if (weights_.empty()) return at::ones({static_cast<int64_t>(idx.size())}, at::kFloat);
  std::vector<float> w;
  w.reserve(idx.size());
  for (int64_t i : idx) w.push_back(weights_.at(static_cast<size_t>(i)));
  return at::tensor(w, at::kFloat);
}

ImageSet ImageSet::from_pixels(const at::Tensor& pixels_u8, const std::vector<int64_t>& labels,
                               const std::string& name) {
  check_images(pixels_u8, "ImageSet::from_pixels");
  if (pixels_u8.size(1) != pixels_u8.size(2))
    throw Error("ImageSet::from_pixels: expected square images, got " + c10::str(pixels_u8.sizes()) +
                "; resize them first (resize_images)");
  if (static_cast<int64_t>(labels.size()) != pixels_u8.size(0))
    throw Error("ImageSet::from_pixels: " + std::to_string(pixels_u8.size(0)) + " images but " +
                std::to_string(labels.size()) + " labels");
  ImageSet s;
  s.opt_.size = static_cast<int>(pixels_u8.size(1));
  s.pixels_ = pixels_u8.cpu().contiguous();
  s.items_.reserve(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) s.items_.push_back({name + "[" + std::to_string(i) + "]", labels[i]});
  return s;
}

}  // namespace tlc
