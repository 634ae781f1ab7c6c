#include "gif.h"

#ifdef TLC_WITH_GIF
#include <gif_lib.h>
#endif

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace tlc {

bool gif_supported() {
#ifdef TLC_WITH_GIF
  return true;
#else
  return false;
#endif
}

#ifndef TLC_WITH_GIF
bool is_gif(const uint8_t* d, std::size_t n) {
  return n >= 13 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0);
}

bool decode_gif_first_frame(const uint8_t*, std::size_t, int64_t, cv::Mat&, DecodeStatus& st) {
  st.error = "GIF support was not built into this tlc (giflib was missing at build time: install libgif-dev and "
             "build again, or convert the file to PNG)";
  return false;
}
#else
namespace {

struct Source {
  const uint8_t* data;
  std::size_t size, pos = 0;
};

int read_bytes(GifFileType* g, GifByteType* buf, int len) {
  auto* s = static_cast<Source*>(g->UserData);
  const std::size_t k = std::min(static_cast<std::size_t>(std::max(len, 0)), s->size - s->pos);
  std::memcpy(buf, s->data + s->pos, k);
  s->pos += k;
  return static_cast<int>(k);
}

struct GifCloser {
  void operator()(GifFileType* g) const {
    int err = 0;
    DGifCloseFile(g, &err);
  }
};

std::string gif_error(int code) {
  const char* s = GifErrorString(code);
  return s ? s : "unknown giflib error " + std::to_string(code);
}

std::string too_large(int64_t w, int64_t h, int64_t max_pixels) {
  return "image is " + std::to_string(w) + "x" + std::to_string(h) + ", above the limit of " +
         std::to_string(max_pixels) + " pixels (raise --max-pixels if it is genuine)";
}

}  // namespace

bool is_gif(const uint8_t* d, std::size_t n) {
  return n >= 13 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0);
}

bool decode_gif_first_frame(const uint8_t* d, std::size_t n, int64_t max_pixels, cv::Mat& out, DecodeStatus& st) {
  // The logical screen's size, from the header, before giflib allocates anything.
  const int64_t sw = d[6] | d[7] << 8, sh = d[8] | d[9] << 8;
  st.width = static_cast<int>(sw);
  st.height = static_cast<int>(sh);
  if (sw * sh > max_pixels) {
    st.error = too_large(sw, sh, max_pixels);
    return false;
  }
  Source src{d, n};
  int err = 0;
  std::unique_ptr<GifFileType, GifCloser> g(DGifOpen(&src, read_bytes, &err));
  if (!g) {
    st.error = "not a decodable GIF: " + gif_error(err);
    return false;
  }
  for (;;) {
    GifRecordType type;
    if (DGifGetRecordType(g.get(), &type) == GIF_ERROR) {
      st.error = "GIF decoding failed: " + gif_error(g->Error);
      return false;
    }
    if (type == TERMINATE_RECORD_TYPE) {
      st.error = "GIF without any image";
      return false;
    }
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* ext = nullptr;
      if (DGifGetExtension(g.get(), &code, &ext) == GIF_ERROR) {
        st.error = "GIF decoding failed: " + gif_error(g->Error);
        return false;
      }
      while (ext)
        if (DGifGetExtensionNext(g.get(), &ext) == GIF_ERROR) {
          st.error = "GIF decoding failed: " + gif_error(g->Error);
          return false;
        }
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) continue;
    if (DGifGetImageDesc(g.get()) == GIF_ERROR) {
      st.error = "GIF decoding failed: " + gif_error(g->Error);
      return false;
    }
    const GifImageDesc& desc = g->Image;
    const int64_t fw = desc.Width, fh = desc.Height;
    if (fw <= 0 || fh <= 0) {
      st.error = "GIF frame of size " + std::to_string(fw) + "x" + std::to_string(fh);
      return false;
    }
    if (fw * fh > max_pixels) {
      st.error = too_large(fw, fh, max_pixels);
      return false;
    }
    const ColorMapObject* cmap = desc.ColorMap ? desc.ColorMap : g->SColorMap;
    if (!cmap || !cmap->Colors) {
      st.error = "GIF frame without a colour table";
      return false;
    }
    std::vector<GifPixelType> idx(static_cast<std::size_t>(fw * fh));
    auto read_row = [&](int64_t row) {
      return DGifGetLine(g.get(), idx.data() + row * fw, static_cast<int>(fw)) != GIF_ERROR;
    };
    bool ok = true;
    if (desc.Interlace) {
      static const int start[] = {0, 4, 2, 1}, step[] = {8, 8, 4, 2};
      for (int pass = 0; pass < 4 && ok; ++pass)
        for (int64_t r = start[pass]; r < fh && ok; r += step[pass]) ok = read_row(r);
    } else {
      for (int64_t r = 0; r < fh && ok; ++r) ok = read_row(r);
    }
    if (!ok) {
      st.error = "truncated or corrupt GIF (" + gif_error(g->Error) + ")";
      return false;
    }
    // The frame on the logical screen (transparency dropped: a transparent index shows its palette colour, as
    // alpha is dropped for PNG); a screen of 0x0 means the frame's own size.
    const int64_t cw = sw > 0 && sh > 0 ? sw : fw, ch = sw > 0 && sh > 0 ? sh : fh;
    const int64_t left = sw > 0 && sh > 0 ? desc.Left : 0, top = sw > 0 && sh > 0 ? desc.Top : 0;
    out = cv::Mat::zeros(static_cast<int>(ch), static_cast<int>(cw), CV_8UC3);
    for (int64_t y = 0; y < fh; ++y) {
      if (top + y < 0 || top + y >= ch) continue;
      auto* row = out.ptr<uint8_t>(static_cast<int>(top + y));
      for (int64_t x = 0; x < fw; ++x) {
        if (left + x < 0 || left + x >= cw) continue;
        const int i = idx[static_cast<std::size_t>(y * fw + x)];
        if (i >= cmap->ColorCount) continue;  // an index past the table: left black
        const GifColorType& c = cmap->Colors[i];
        uint8_t* p = row + (left + x) * 3;
        p[0] = c.Red;
        p[1] = c.Green;
        p[2] = c.Blue;
      }
    }
    st.width = static_cast<int>(cw);
    st.height = static_cast<int>(ch);
    return true;
  }
}

#endif  // TLC_WITH_GIF

}  // namespace tlc
