// The CUDA normalize kernel's indexing, tested without a GPU: cuda/normalize_tile.h is the kernel's body, and
// here it runs on the CPU for every block and thread of a launch, phase by phase (a barrier between phases
// is the same as finishing a phase for all threads first). Outputs are compared bit for bit with the
// reference normalize_cpu; the output buffer is poisoned first and guarded on both sides, and source and
// output are placed at every alignment, so the ragged-end copies and the 16-byte middle are both covered.
#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "../cuda/normalize_tile.h"
#include "tlc/normalize.h"

namespace {

using tlc::cuda::Geometry;
using tlc::cuda::NormalizeParams;

struct HostOps {
  static float fma(float a, float b, float c) { return std::fmaf(a, b, c); }
  template <typename T>
  static T cvt(float v) {
    return T(v);  // float: itself; c10::BFloat16 and c10::Half round to nearest even
  }
};

// Runs the kernel body for a launch of `blocks` x `threads` over tiles of `tile_px` pixels.
template <typename T>
void emulate_launch(const uint8_t* src, int64_t n, int64_t h, int64_t w, const NormalizeParams& p,
                    const uint8_t* flip, T* dst, int64_t tile_px, int blocks, int threads) {
  const Geometry g = tlc::cuda::make_geometry(n, h, w, tile_px);
  const int64_t bytes = tlc::cuda::shared_bytes(tile_px, sizeof(T));
  ASSERT_EQ(bytes % 16, 0);
  // Shared memory with a guard after it: a write past the block's share shows as a changed guard.
  std::vector<tlc::cuda::Vec16> store(static_cast<size_t>(bytes / 16 + 4));
  uint8_t* smem = reinterpret_cast<uint8_t*>(store.data());
  std::memset(smem, 0x5A, store.size() * 16);
  for (int blk = 0; blk < blocks; ++blk) {
    for (int64_t ti = blk; ti < g.tiles(); ti += blocks) {
      const auto t = tlc::cuda::tile_at(g, ti, flip);
      ASSERT_LE(static_cast<int64_t>(t.rows) * t.cols, tile_px);
      const auto v = tlc::cuda::make_view<T>(g, t, p, src, dst, smem, tile_px);
      for (int tid = 0; tid < threads; ++tid) tlc::cuda::load_phase(v, tid, threads);
      for (int tid = 0; tid < threads; ++tid) tlc::cuda::compute_phase<HostOps>(v, t, p, tid, threads);
      for (int tid = 0; tid < threads; ++tid) tlc::cuda::store_phase(v, tid, threads);
    }
  }
  for (int64_t i = bytes; i < static_cast<int64_t>(store.size()) * 16; ++i)
    ASSERT_EQ(smem[i], 0x5A) << "shared memory written past its " << bytes << " bytes at byte " << i;
}

template <typename T>
void check_case(int64_t n, int64_t h, int64_t w, tlc::NormalizeMode mode, tlc::Layout layout, int64_t tile_px,
                int blocks, int threads, int src_shift, int dst_shift, std::mt19937& rng) {
  const int64_t count = n * h * w * 3;
  std::vector<uint8_t> src_buf(static_cast<size_t>(count + 32));
  uint8_t* src = src_buf.data() + (16 - (reinterpret_cast<uintptr_t>(src_buf.data()) & 15)) % 16 + src_shift;
  for (int64_t i = 0; i < count; ++i) src[i] = static_cast<uint8_t>(rng() & 255);
  std::vector<uint8_t> flip(static_cast<size_t>(n));
  for (auto& f : flip) f = static_cast<uint8_t>(rng() & 1);
  const auto spec = tlc::NormalizeSpec::from_mode(mode);
  std::vector<float> ref(static_cast<size_t>(count));
  tlc::normalize_cpu(src, n, h, w, spec, flip.data(), ref.data(), layout);

  // The output, poisoned, with 64 guard bytes on both sides, starting `dst_shift` elements past 16 bytes.
  const int64_t guard = 64;
  std::vector<tlc::cuda::Vec16> dst_store(static_cast<size_t>((count * sizeof(T) + 2 * guard + 64) / 16 + 1));
  uint8_t* raw = reinterpret_cast<uint8_t*>(dst_store.data());
  const size_t raw_bytes = dst_store.size() * 16;
  std::memset(raw, 0xFF, raw_bytes);  // NaN in every float type
  T* dst = reinterpret_cast<T*>(raw + guard) + dst_shift;

  NormalizeParams p{};
  for (int c = 0; c < 3; ++c) {
    p.scale[c] = spec.scale[c];
    p.shift[c] = spec.shift[c];
  }
  p.bgr = spec.bgr;
  p.nhwc = layout == tlc::Layout::nhwc;
  emulate_launch<T>(src, n, h, w, p, flip.data(), dst, tile_px, blocks, threads);

  const std::string where = "shape " + std::to_string(n) + "x" + std::to_string(h) + "x" + std::to_string(w) +
                            " mode " + tlc::to_string(mode) + (p.nhwc ? " nhwc" : " nchw") + " tile " +
                            std::to_string(tile_px) + " blocks " + std::to_string(blocks) + " threads " +
                            std::to_string(threads) + " shifts " + std::to_string(src_shift) + "/" +
                            std::to_string(dst_shift) + " bytes/elt " + std::to_string(sizeof(T));
  for (int64_t i = 0; i < count; ++i) {
    const T want = T(ref[static_cast<size_t>(i)]);
    ASSERT_EQ(std::memcmp(&dst[i], &want, sizeof(T)), 0)
        << where << ": first mismatch at flat index " << i << ": got " << static_cast<float>(dst[i]) << ", want "
        << static_cast<float>(want);
  }
  const uint8_t* first = reinterpret_cast<const uint8_t*>(dst);
  const uint8_t* last = reinterpret_cast<const uint8_t*>(dst + count);
  for (const uint8_t* b = raw; b < first; ++b) ASSERT_EQ(*b, 0xFF) << where << ": written before the output";
  for (const uint8_t* b = last; b < raw + raw_bytes; ++b) ASSERT_EQ(*b, 0xFF) << where << ": written after the output";
}

struct Shape {
  int64_t n, h, w;
};

template <typename T>
void run_all(uint32_t seed) {
  std::mt19937 rng(seed);
  // Awkward shapes: 1x1, odd widths, rows wider than a tile, batch 257, and the real 160x160 size.
  const Shape shapes[] = {{1, 1, 1}, {2, 3, 5}, {3, 7, 13}, {257, 2, 3}, {1, 5, 37}, {2, 1, 100}, {1, 160, 160}};
  const int64_t tiles[] = {1, 7, 64, 2048};
  const int threads[] = {1, 3, 32, 256};
  int k = 0;
  for (const auto& s : shapes)
    for (auto mode : {tlc::NormalizeMode::minus1to1, tlc::NormalizeMode::imagenet, tlc::NormalizeMode::caffe})
      for (auto layout : {tlc::Layout::nchw, tlc::Layout::nhwc})
        for (int64_t tp : tiles) {
          if (s.h * s.w > 4096 && tp < 64) continue;  // keeps the run short; small tiles are covered elsewhere
          ++k;
          // Vary the launch and the alignments across cases rather than taking every combination.
          const int nt = threads[k % 4];
          const int blocks = 1 + k % 5;
          check_case<T>(s.n, s.h, s.w, mode, layout, tp, blocks, nt, k % 16, k % 7, rng);
          if (::testing::Test::HasFatalFailure()) return;
        }
}

}  // namespace

TEST(NormalizeTiles, GeometryCoversEveryPixelOnce) {
  for (int64_t h : {1, 2, 7, 160})
    for (int64_t w : {1, 3, 13, 160, 300})
      for (int64_t tp : {1, 5, 64, 2048}) {
        const Geometry g = tlc::cuda::make_geometry(2, h, w, tp);
        std::vector<int> seen(static_cast<size_t>(2 * h * w), 0);
        for (int64_t t = 0; t < g.tiles(); ++t) {
          const auto tile = tlc::cuda::tile_at(g, t, nullptr);
          EXPECT_LE(static_cast<int64_t>(tile.rows) * tile.cols, tp);
          EXPECT_TRUE(tile.rows == 1 || tile.cols == w) << "a multi-row tile must hold whole rows";
          for (int r = 0; r < tile.rows; ++r)
            for (int c = 0; c < tile.cols; ++c) ++seen[static_cast<size_t>((tile.b * h + tile.y0 + r) * w + tile.x0 + c)];
        }
        for (size_t i = 0; i < seen.size(); ++i)
          ASSERT_EQ(seen[i], 1) << "h " << h << " w " << w << " tile " << tp << ": pixel " << i;
      }
}

TEST(NormalizeTiles, Float32IsBitIdenticalToTheReference) { run_all<float>(1); }
TEST(NormalizeTiles, BFloat16IsTheReferenceRoundedToNearestEven) { run_all<c10::BFloat16>(2); }
TEST(NormalizeTiles, Float16IsTheReferenceRoundedToNearestEven) { run_all<c10::Half>(3); }
