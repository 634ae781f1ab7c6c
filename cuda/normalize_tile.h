#pragma once
// The normalize kernel's work, written once and compiled twice: by nvcc into the kernel (cuda/normalize.cu)
// and by the host compiler into a CPU emulation of the launch (tests/test_normalize_tiles.cpp) that runs the
// same code for every block and thread, phase by phase, so that its indexing is tested on machines without
// a GPU. Nothing here includes CUDA headers.
//
// The work is cut into tiles: a tile is a run of whole rows of one image (or, for rows wider than a tile, a
// segment of one row), so that a flipped tile reads a contiguous mirrored run of the same image. A block
// handles a tile in three phases separated by barriers:
//   1. load:    the tile's source bytes, global -> shared, 16-byte accesses coalesced across the block;
//   2. compute: per pixel, flip + channel order + one fused multiply-add, shared -> shared in output order;
//   3. store:   shared -> global, 16-byte accesses coalesced across the block (one run for NHWC output,
//               one run per channel plane for NCHW).
// Global memory is touched once per byte in each direction, always with wide coalesced accesses; the
// reordering happens in shared memory. Any alignment of the tensors works: each staging area in shared
// memory starts at the same address modulo 16 as its global run, so the middle of every run moves in
// 16-byte pieces and only the ragged ends move byte by byte.
#include <cstdint>

#if defined(__CUDACC__)
#define TLC_HD __host__ __device__ __forceinline__
#define TLC_UNROLL _Pragma("unroll")
#else
#define TLC_HD inline
#define TLC_UNROLL
#endif

namespace tlc::cuda {

struct NormalizeParams {
  float scale[3];
  float shift[3];
  int bgr;
  int nhwc;  // 0: NCHW output, 1: NHWC (channels-last) output
};

struct alignas(16) Vec16 {
  uint32_t w[4];
};

struct Geometry {
  int64_t n = 0, h = 0, w = 0;
  int64_t tile_px = 0;          // most pixels one tile holds
  int64_t rows = 1;             // rows per tile (when a row fits in a tile)
  int64_t segs = 1;             // segments per row (when it does not; rows is then 1)
  int64_t tiles_per_image = 0;
  TLC_HD int64_t tiles() const { return n * tiles_per_image; }
};

TLC_HD Geometry make_geometry(int64_t n, int64_t h, int64_t w, int64_t tile_px) {
  Geometry g;
  g.n = n;
  g.h = h;
  g.w = w;
  g.tile_px = tile_px;
  if (w <= tile_px) {
    g.rows = tile_px / w < h ? tile_px / w : h;
    g.segs = 1;
    g.tiles_per_image = (h + g.rows - 1) / g.rows;
  } else {
    g.rows = 1;
    g.segs = (w + tile_px - 1) / tile_px;
    g.tiles_per_image = h * g.segs;
  }
  return g;
}

// Shared memory one block needs for tiles of `tile_px` pixels and `out_size`-byte outputs.
TLC_HD int64_t shared_bytes(int64_t tile_px, int64_t out_size) {
  const int64_t in = (tile_px * 3 + 16 + 15) / 16 * 16;
  return in + 3 * ((tile_px * out_size + 16 + 15) / 16 * 16);
}

struct Tile {
  int64_t b, y0, x0;  // image, first row, first column of the output
  int rows, cols;
  bool flip;
};

TLC_HD Tile tile_at(const Geometry& g, int64_t t, const uint8_t* flip_mask) {
  Tile r;
  r.b = t / g.tiles_per_image;
  const int64_t k = t % g.tiles_per_image;
  if (g.segs == 1) {
    r.y0 = k * g.rows;
    r.rows = static_cast<int>(g.rows < g.h - r.y0 ? g.rows : g.h - r.y0);
    r.x0 = 0;
    r.cols = static_cast<int>(g.w);
  } else {
    r.y0 = k / g.segs;
    r.x0 = (k % g.segs) * g.tile_px;
    r.rows = 1;
    r.cols = static_cast<int>(g.tile_px < g.w - r.x0 ? g.tile_px : g.w - r.x0);
  }
  r.flip = flip_mask != nullptr && flip_mask[r.b] != 0;
  return r;
}

TLC_HD int64_t misalign16(const void* p) { return static_cast<int64_t>(reinterpret_cast<uintptr_t>(p) & 15); }

// Where one tile's bytes are, in global and in shared memory.
template <typename T>
struct TileView {
  const uint8_t* gsrc;  // first source byte (the mirrored run when flipped)
  uint8_t* sin;         // its copy in shared memory
  int64_t in_bytes;
  int planes;           // 1 (NHWC) or 3 (NCHW)
  T* gdst[3];
  T* sout[3];
  int64_t out_count;    // elements per plane
};

template <typename T>
TLC_HD TileView<T> make_view(const Geometry& g, const Tile& t, const NormalizeParams& p, const uint8_t* src,
                             T* dst, uint8_t* smem, int64_t tile_px) {
  TileView<T> v;
  // Rows of a multi-row tile are whole (x0 = 0, cols = w), so the mirrored run starts at column 0 too.
  const int64_t sx0 = t.flip ? g.w - t.x0 - t.cols : t.x0;
  const int64_t first_px = t.b * g.h * g.w + t.y0 * g.w;
  const int64_t px = static_cast<int64_t>(t.rows) * t.cols;
  v.gsrc = src + (first_px + sx0) * 3;
  v.sin = smem + misalign16(v.gsrc);
  v.in_bytes = px * 3;
  uint8_t* out_base = smem + (tile_px * 3 + 16 + 15) / 16 * 16;
  const int64_t plane_cap = (tile_px * static_cast<int64_t>(sizeof(T)) + 16 + 15) / 16 * 16;
  if (p.nhwc) {
    v.planes = 1;
    v.out_count = px * 3;
    v.gdst[0] = dst + (first_px + t.x0) * 3;
  } else {
    v.planes = 3;
    v.out_count = px;
TLC_UNROLL
    for (int c = 0; c < 3; ++c) v.gdst[c] = dst + ((t.b * 3 + c) * g.h + t.y0) * g.w + t.x0;
  }
  // Loops over the planes are unrolled with constant indices so that the arrays stay in registers.
TLC_UNROLL
  for (int c = 0; c < 3; ++c)
    if (c < v.planes) v.sout[c] = reinterpret_cast<T*>(out_base + c * plane_cap + misalign16(v.gdst[c]));
  return v;
}

// Copies len bytes between two addresses that are equal modulo 16: ragged ends byte by byte, the middle in
// 16-byte pieces, thread `tid` of `nt` taking every nt-th piece (coalesced).
TLC_HD void copy_congruent(uint8_t* dst, const uint8_t* src, int64_t len, int tid, int nt) {
  int64_t head = (16 - misalign16(src)) & 15;
  if (head > len) head = len;
  const int64_t vecs = (len - head) / 16;
  const int64_t tail_start = head + vecs * 16;
  for (int64_t i = tid; i < head; i += nt) dst[i] = src[i];
  const Vec16* s = reinterpret_cast<const Vec16*>(src + head);
  Vec16* d = reinterpret_cast<Vec16*>(dst + head);
  for (int64_t i = tid; i < vecs; i += nt) d[i] = s[i];
  for (int64_t i = tail_start + tid; i < len; i += nt) dst[i] = src[i];
}

template <typename T>
TLC_HD void load_phase(const TileView<T>& v, int tid, int nt) {
  copy_congruent(v.sin, v.gsrc, v.in_bytes, tid, nt);
}

// Ops supplies fma(a, b, c) (one rounding) and cvt(float) -> T (round to nearest even).
template <typename Ops, typename T>
TLC_HD void compute_phase(const TileView<T>& v, const Tile& t, const NormalizeParams& p, int tid, int nt) {
  const int px = t.rows * t.cols;
  // Row and column of pixel `q` advance incrementally: no division per pixel.
  int r = tid / t.cols, j = tid % t.cols;
  const int dr = nt / t.cols, dj = nt % t.cols;
  for (int q = tid; q < px; q += nt) {
    const int sj = t.flip ? t.cols - 1 - j : j;
    const uint8_t* s = v.sin + (r * t.cols + sj) * 3;
TLC_UNROLL
    for (int c = 0; c < 3; ++c) {
      const float x = static_cast<float>(s[p.bgr ? 2 - c : c]);
      const T y = Ops::template cvt<T>(Ops::fma(x, p.scale[c], p.shift[c]));
      if (p.nhwc)
        v.sout[0][q * 3 + c] = y;
      else
        v.sout[c][q] = y;
    }
    j += dj;
    r += dr;
    if (j >= t.cols) {
      j -= t.cols;
      ++r;
    }
  }
}

template <typename T>
TLC_HD void store_phase(const TileView<T>& v, int tid, int nt) {
TLC_UNROLL
  for (int c = 0; c < 3; ++c)
    if (c < v.planes)
      copy_congruent(reinterpret_cast<uint8_t*>(v.gdst[c]), reinterpret_cast<const uint8_t*>(v.sout[c]),
                   v.out_count * static_cast<int64_t>(sizeof(T)), tid, nt);
}

}  // namespace tlc::cuda
