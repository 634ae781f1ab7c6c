#pragma once
// Decoded images ready for batching: every file is decoded once up front on all cores (which also finds the
// broken ones), and the pixels stay in memory when they fit the budget; otherwise batches are decoded again
// on demand.
#include <ATen/core/Tensor.h>

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tlc/dataset.h"
#include "tlc/image_io.h"

namespace tlc {

class GpuDecoder;

struct ScanReport {
  std::vector<SkippedFile> broken;    // could not be decoded: skipped
  std::vector<SkippedFile> warnings;  // decoded with a warning: used
};

// Optional consumer of a scan's decoded images: scan decodes chunk k+1 (on a worker, with all decoding
// threads) while `fn` works on chunk k, so that a first pass over the images (e.g. feature extraction on a
// GPU) overlaps the decoding. `fn` gets each chunk's decodable images, in order, as uint8 [m,S,S,3] on
// `device` (m may be 0 when a chunk holds only broken files), with how many of the scan's items are done.
struct ChunkSink {
  std::function<void(const at::Tensor& pixels, int64_t items_done, int64_t items_total)> fn;
  int64_t chunk = 32;
  c10::Device device = c10::Device(c10::kCPU);
  // When set (device is CUDA), chunks are decoded by it on the GPU instead of on the CPU threads.
  GpuDecoder* gpu = nullptr;
};

// Images of any size (uint8 [N,H,W,3] RGB) to [N,size,size,3] the way decoding resizes files (same ResizeMode,
// same interpolation), so that arrays and files of the same pixels give the same input. Throws tlc::Error for
// another shape or dtype.
at::Tensor resize_images(const at::Tensor& images_u8, int size, ResizeMode mode);

class ImageSet {
 public:
  ImageSet() = default;
  int64_t size() const { return static_cast<int64_t>(items_.size()); }
  const std::vector<ImageItem>& items() const { return items_; }
  int64_t image_size() const { return opt_.size; }
  bool in_memory() const { return pixels_.defined(); }
  // uint8 [B,S,S,3] for the given item indices (in pinned memory when `pinned`, for a fast copy to a GPU).
  at::Tensor batch(const std::vector<int64_t>& indices, bool pinned = false) const;
  at::Tensor labels(const std::vector<int64_t>& indices) const;

  // Decodes every item (on `threads` threads, 0 = all cores). Undecodable files are dropped and listed in
  // `report` (or, with strict, make it throw tlc::Error naming the first one).
  static ImageSet scan(const std::vector<ImageItem>& items, const DecodeOptions& opt, int threads,
                       int64_t memory_budget_bytes, bool strict, ScanReport& report, const ChunkSink& sink = {});
  // Items known to decode (another process scanned them): nothing is decoded now, batches are decoded on
  // demand.
  static ImageSet on_demand(std::vector<ImageItem> items, const DecodeOptions& opt, int threads);

  // A set over pixels already in memory (a numpy array from Python): uint8 [N,S,S,3] RGB, one label per image.
  // Its items are named "<name>[i]" instead of paths, so an on-disk feature cache (keyed by paths) must not be
  // used with it. Throws tlc::Error for another shape or dtype, or a label count that differs from N.
  static ImageSet from_pixels(const at::Tensor& pixels_u8, const std::vector<int64_t>& labels,
                              const std::string& name = "array");
  // The decoded images [N,S,S,3] when the set is in memory, else an undefined tensor.
  const at::Tensor& pixels() const { return pixels_; }

  // Per-image loss weights (scikit-learn's sample_weight): training minimizes each batch's weighted mean loss,
  // sum(w_i * loss_i) / sum(w_i), times the class weights when those are on. One finite weight >= 0 per item,
  // not all zero, else tlc::Error. Unset (the default), every image weighs 1.
  void set_weights(std::vector<float> weights);
  bool weighted() const { return !weights_.empty(); }
  // float [B] weights of the given items (ones when unset).
  at::Tensor weights(const std::vector<int64_t>& indices) const;

 private:
  std::vector<ImageItem> items_;
  DecodeOptions opt_;
  int threads_ = 0;
  at::Tensor pixels_;  // [N,S,S,3] uint8 when in memory
  std::vector<float> weights_;  // empty: all 1
};

}  // namespace tlc
