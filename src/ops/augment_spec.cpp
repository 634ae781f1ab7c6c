// The augmentation's text (presets and the --augment syntax) and the per-view parameters drawn from a seed.
#include <ATen/ATen.h>

#include <charconv>
#include <cmath>
#include <sstream>

#include "tlc/augment.h"
#include "tlc/error.h"
#include "tlc/util.h"

namespace tlc {

namespace {

constexpr const char* kChoices =
    "none, a preset (flip, light, keras, fastai, timm), or a comma-separated list of flip[=h|v|hv], vflip, "
    "rotate=DEGREES, zoom=FACTOR, translate=FRACTION, crop=MIN_AREA, warp=MAGNITUDE, brightness=F, contrast=F, "
    "saturation=F, lighting=F (brightness and contrast), p=PROBABILITY";

std::string shortest(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

AugmentSpec preset(const std::string& name, bool* found) {
  AugmentSpec s;
  *found = true;
  if (name == "none") return s;
  if (name == "flip") {
    s.flip_h = true;
  } else if (name == "light") {
    s.flip_h = true, s.rotate = 10, s.zoom = 1.1, s.translate = 0.05;
  } else if (name == "keras") {  // RandomFlip("horizontal") + RandomRotation(0.2): 0.2 of a full turn
    s.flip_h = true, s.rotate = 72;
  } else if (name == "fastai") {  // aug_transforms(): max_rotate 10, max_zoom 1.1, max_lighting 0.2, max_warp 0.2
    s.flip_h = true, s.rotate = 10, s.zoom = 1.1, s.brightness = 0.2, s.contrast = 0.2, s.warp = 0.2, s.p = 0.75;
  } else if (name == "timm") {  // RandomResizedCrop(scale=(0.08, 1)), flip, ColorJitter(0.4, 0.4, 0.4)
    s.crop = 0.08, s.flip_h = true, s.brightness = 0.4, s.contrast = 0.4, s.saturation = 0.4;
  } else {
    *found = false;
  }
  return s;
}

double number(const std::string& item, const std::string& value, double lo, double hi, bool lo_open = false) {
  double v = 0;
  const char* end = value.data() + value.size();
  auto r = std::from_chars(value.data(), end, v);
  if (value.empty() || r.ec != std::errc() || r.ptr != end || !std::isfinite(v))
    throw Error("--augment: '" + item + "' needs a number after '='");
  if (v > hi || v < lo || (lo_open && v == lo))
    throw Error("--augment: '" + item + "' is out of range: give " + (lo_open ? "more than " : "") + shortest(lo) +
                (lo_open ? " and up to " : " to ") + shortest(hi));
  return v;
}

// 3x3 row-major products.
struct M3 {
  double a[9];
};
M3 mul(const M3& x, const M3& y) {
  M3 r{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) r.a[i * 3 + j] += x.a[i * 3 + k] * y.a[k * 3 + j];
  return r;
}
M3 affine(double a, double b, double c, double d, double tx, double ty) { return M3{{a, b, tx, c, d, ty, 0, 0, 1}}; }

double uniform(Rng& r) { return static_cast<double>(r.next() >> 11) * 0x1.0p-53; }

// Whether p means anything: flips are always drawn with probability 0.5.
bool uses_p(const AugmentSpec& s) {
  return s.rotate != 0 || s.zoom != 1 || s.translate != 0 || s.crop != 0 || s.warp != 0 || s.brightness != 0 ||
         s.contrast != 0 || s.saturation != 0;
}

}  // namespace

bool AugmentSpec::none() const { return *this == AugmentSpec{}; }

bool AugmentSpec::flip_only() const {
  AugmentSpec f;
  f.flip_h = true;
  return *this == f;
}

bool AugmentSpec::operator==(const AugmentSpec& o) const {
  // With nothing but flips, p is not used: "flip" and "flip,p=0.5" draw the same views.
  return flip_h == o.flip_h && flip_v == o.flip_v && rotate == o.rotate && zoom == o.zoom && translate == o.translate &&
         crop == o.crop && warp == o.warp && brightness == o.brightness && contrast == o.contrast &&
         saturation == o.saturation && (!uses_p(*this) || p == o.p);
}

AugmentSpec parse_augment(const std::string& text) {
  AugmentSpec s;
  if (text.empty()) throw Error(std::string("--augment is empty; choose ") + kChoices);
  std::stringstream in(text);
  std::string item;
  int items = 0;
  bool saw_none = false;
  while (std::getline(in, item, ',')) {
    ++items;
    const size_t eq = item.find('=');
    const std::string name = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
    bool found = false;
    if (eq == std::string::npos) {
      AugmentSpec p = preset(name, &found);
      if (found) {
        saw_none = saw_none || name == "none";
        // A preset replaces everything before it ("flip" only adds horizontal flips); items after it override it.
        AugmentSpec merged = p;
        if (name == "flip") merged = s, merged.flip_h = true;
        s = merged;
        continue;
      }
      if (name == "vflip") {
        s.flip_v = true;
        continue;
      }
      throw Error("--augment: unknown item '" + item + "'; choose " + kChoices);
    }
    if (name == "flip") {
      if (value != "h" && value != "v" && value != "hv" && value != "vh")
        throw Error("--augment: flip takes h, v or hv, not '" + value + "'");
      s.flip_h = value.find('h') != std::string::npos;
      s.flip_v = value.find('v') != std::string::npos;
    } else if (name == "rotate") {
      s.rotate = number(item, value, 0, 180);
    } else if (name == "zoom") {
      s.zoom = number(item, value, 0, 4, true);
    } else if (name == "translate") {
      s.translate = number(item, value, 0, 0.5);
    } else if (name == "crop") {
      s.crop = number(item, value, 0, 1, true);
      if (s.crop == 1) s.crop = 0;  // the whole image: no crop
    } else if (name == "warp") {
      s.warp = number(item, value, 0, 0.45);  // beyond ~0.5 the projection folds inside the image
    } else if (name == "brightness") {
      s.brightness = number(item, value, 0, 1);
    } else if (name == "contrast") {
      s.contrast = number(item, value, 0, 1);
    } else if (name == "saturation") {
      s.saturation = number(item, value, 0, 1);
    } else if (name == "lighting") {
      s.brightness = s.contrast = number(item, value, 0, 1);
    } else if (name == "p") {
      s.p = number(item, value, 0, 1);
    } else {
      throw Error("--augment: unknown item '" + item + "'; choose " + kChoices);
    }
  }
  if (items == 0 || text.back() == ',') throw Error("--augment: empty item in '" + text + "'");
  if (saw_none && items > 1) throw Error("--augment: 'none' cannot be combined with other items in '" + text + "'");
  return s;
}

std::string to_string(const AugmentSpec& s) {
  if (s.none()) return "none";
  std::vector<std::string> parts;
  if (s.flip_h && s.flip_v) parts.push_back("flip=hv");
  else if (s.flip_h) parts.push_back("flip");
  else if (s.flip_v) parts.push_back("vflip");
  auto add = [&](const char* name, double v, double neutral) {
    if (v != neutral) parts.push_back(std::string(name) + "=" + shortest(v));
  };
  add("rotate", s.rotate, 0);
  add("zoom", s.zoom, 1);
  add("translate", s.translate, 0);
  add("crop", s.crop, 0);
  add("warp", s.warp, 0);
  add("brightness", s.brightness, 0);
  add("contrast", s.contrast, 0);
  add("saturation", s.saturation, 0);
  if (uses_p(s)) add("p", s.p, 1);
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ",") + p;
  return out;
}

std::string describe(const AugmentSpec& s) {
  if (s.none()) return "no augmentation";
  std::vector<std::string> parts;
  if (s.flip_h) parts.push_back("random horizontal flips");
  if (s.flip_v) parts.push_back("random vertical flips");
  if (s.rotate != 0) parts.push_back("rotations of up to " + shortest(s.rotate) + " degrees");
  if (s.zoom != 1) parts.push_back("zoom " + (s.zoom > 1 ? "1-" + shortest(s.zoom) : shortest(s.zoom) + "-1") + "x");
  if (s.translate != 0) parts.push_back("shifts of up to " + shortest(s.translate * 100) + "%");
  if (s.crop != 0) parts.push_back("random-resized crops of " + shortest(s.crop * 100) + "-100% of the area");
  if (s.warp != 0) parts.push_back("perspective warp " + shortest(s.warp));
  if (s.brightness != 0) parts.push_back("brightness +-" + shortest(s.brightness * 100) + "%");
  if (s.contrast != 0) parts.push_back("contrast +-" + shortest(s.contrast * 100) + "%");
  if (s.saturation != 0) parts.push_back("saturation +-" + shortest(s.saturation * 100) + "%");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i == 0 ? "" : ", ") + parts[i];
  if (s.p != 1 && uses_p(s))
    out += " (each with probability " + shortest(s.p) + ")";
  return out;
}

ViewParams identity_view() { return ViewParams{}; }

ViewParams draw_view(const AugmentSpec& s, int64_t h, int64_t w, uint64_t seed, uint64_t key, uint64_t view) {
  Hasher hs;
  hs.add(static_cast<int64_t>(seed));
  hs.add(static_cast<int64_t>(key));
  hs.add(static_cast<int64_t>(view));
  Rng r(hs.h);
  // Every number is drawn whether or not it is used, so a view keeps its other numbers when one changes.
  const bool coin_h = r.below(2) == 1, coin_v = r.below(2) == 1;
  const bool fh = s.flip_h && coin_h, fv = s.flip_v && coin_v;
  bool on[8];
  for (bool& o : on) o = uniform(r) < s.p;
  double u[13];
  for (double& x : u) x = uniform(r);
  const double cx = (static_cast<double>(w) - 1) / 2, cy = (static_cast<double>(h) - 1) / 2;
  const double hw = static_cast<double>(w) / 2, hh = static_cast<double>(h) / 2;

  M3 m = affine(1, 0, 0, 1, -cx, -cy);                                            // centred output pixel
  m = mul(affine(fh ? -1 : 1, 0, 0, fv ? -1 : 1, 0, 0), m);                      // flips
  if (on[4] && s.warp != 0) {                                                     // keystone (projective)
    const double a = (2 * u[8] - 1) * s.warp, b = (2 * u[9] - 1) * s.warp;
    m = mul(M3{{1, 0, 0, 0, 1, 0, a / hw, b / hh, 1}}, m);
  }
  if (on[0] && s.rotate != 0) {
    const double t = (2 * u[0] - 1) * s.rotate * M_PI / 180;
    m = mul(affine(std::cos(t), -std::sin(t), std::sin(t), std::cos(t), 0, 0), m);
  }
  if (on[1] && s.zoom != 1) {
    const double z = s.zoom > 1 ? 1 + u[1] * (s.zoom - 1) : s.zoom + u[1] * (1 - s.zoom);
    m = mul(affine(1 / z, 0, 0, 1 / z, 0, 0), m);
  }
  double ox = 0, oy = 0;
  if (on[3] && s.crop != 0) {
    const double area = s.crop + u[4] * (1 - s.crop);
    const double ratio = std::exp(std::log(3.0 / 4) + u[5] * (std::log(4.0 / 3) - std::log(3.0 / 4)));
    const double sx = std::min(1.0, std::sqrt(area * ratio)), sy = std::min(1.0, std::sqrt(area / ratio));
    m = mul(affine(sx, 0, 0, sy, 0, 0), m);
    ox = (2 * u[6] - 1) * (1 - sx) * hw;
    oy = (2 * u[7] - 1) * (1 - sy) * hh;
  }
  if (on[2] && s.translate != 0) {
    ox += (2 * u[2] - 1) * s.translate * static_cast<double>(w);
    oy += (2 * u[3] - 1) * s.translate * static_cast<double>(h);
  }
  m = mul(affine(1, 0, 0, 1, cx + ox, cy + oy), m);
  ViewParams v;
  for (int i = 0; i < 9; ++i) v.m[i] = static_cast<float>(m.a[i] / m.a[8]);
  if (on[5] && s.brightness != 0) v.brightness = static_cast<float>(1 + (2 * u[10] - 1) * s.brightness);
  if (on[6] && s.contrast != 0) v.contrast = static_cast<float>(1 + (2 * u[11] - 1) * s.contrast);
  if (on[7] && s.saturation != 0) v.saturation = static_cast<float>(1 + (2 * u[12] - 1) * s.saturation);
  return v;
}

at::Tensor view_tensor(const std::vector<ViewParams>& views) {
  at::Tensor t = at::empty({static_cast<int64_t>(views.size()), kViewParamFloats}, at::kFloat);
  float* p = t.data_ptr<float>();
  for (const ViewParams& v : views) {
    for (int i = 0; i < 9; ++i) *p++ = v.m[i];
    *p++ = v.brightness;
    *p++ = v.contrast;
    *p++ = v.saturation;
  }
  return t;
}

std::vector<uint64_t> pixel_keys(const at::Tensor& images) {
  const at::Tensor host = images.cpu();
  std::vector<uint64_t> keys;
  for (int64_t i = 0; i < host.size(0); ++i) keys.push_back(pixel_key(host[i]));
  return keys;
}

at::Tensor view_params(const AugmentSpec& spec, int64_t h, int64_t w, uint64_t seed, const std::vector<uint64_t>& keys,
                       const std::vector<int64_t>& view_id) {
  std::vector<ViewParams> views;
  for (size_t r = 0; r < view_id.size(); ++r)
    views.push_back(view_id[r] < 0 ? identity_view()
                                   : draw_view(spec, h, w, seed, keys.at(r), static_cast<uint64_t>(view_id[r])));
  return view_tensor(views);
}

uint64_t pixel_key(const at::Tensor& image) {
  const at::Tensor c = image.to(at::kCPU).contiguous();
  Hasher h;
  h.add(c.data_ptr(), static_cast<size_t>(c.numel() * c.element_size()));
  return h.h;
}

}  // namespace tlc
