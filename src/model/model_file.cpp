#include "tlc/model_file.h"

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "tlc/calibration.h"
#include "tlc/device.h"
#include "tlc/error.h"
#include "tlc/util.h"

namespace tlc {
namespace {

// TorchScript methods of the saved model. `define` resolves `torch.*` builtins but not torch.nn.functional,
// and a registered submodule is called through its forward method.
std::string model_source(bool hidden) {
  std::string s = R"(
def normalize_images(self, images: Tensor) -> Tensor:
    x = images.permute(0, 3, 1, 2).float()
    if self.norm_bgr:
        x = x.flip([1])
    return x * self.norm_scale.view(1, 3, 1, 1) + self.norm_shift.view(1, 3, 1, 1)

def features(self, x: Tensor) -> Tensor:
    return self.backbone.forward(x).mean([2, 3])

def logits(self, x: Tensor) -> Tensor:
    f = self.features(x)
)";
  if (hidden) s += "    f = torch.relu(torch.matmul(f, self.head_hidden_w.t()) + self.head_hidden_b)\n";
  s += R"(    return torch.matmul(f, self.head_w.t()) + self.head_b

def forward(self, x: Tensor) -> Tensor:
    return torch.softmax(self.logits(x), 1)

def classify_images(self, images: Tensor) -> Tensor:
    return self.forward(self.normalize_images(images))
)";
  return s;
}

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// PyTorch's first line, shortened at a word boundary with a visible "..." rather than cut mid-word.
std::string short_reason(const std::string& s) {
  std::string l = first_line(s);
  if (l.size() <= 160) return l;
  size_t cut = l.rfind(' ', 157);
  return l.substr(0, cut == std::string::npos || cut < 80 ? 157 : cut) + " ...";
}

// What the first bytes of a file say it is, for the files people pass instead of a model by mistake.
std::string sniff(const std::string& path) {
  unsigned char b[12] = {0};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  const size_t n = std::fread(b, 1, sizeof b, f);
  std::fclose(f);
  if (n >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) return "zip";
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "a JPEG image";
  if (n >= 4 && b[0] == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G') return "a PNG image";
  if (n >= 4 && b[0] == 'G' && b[1] == 'I' && b[2] == 'F' && b[3] == '8') return "a GIF image";
  if (n >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WEBP", 4) == 0) return "a WebP image";
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "a BMP image";
  if (n == 0) return "an empty file";
  return "";
}

const char* const kModelUsage =
    "the model comes first: give the model.pt that `tlc train` writes, or its run folder, then the images "
    "(tlc predict MODEL_OR_RUN_DIR IMAGE..., tlc evaluate MODEL_OR_RUN_DIR [DATA_DIR])";

}  // namespace

void save_model_file(const std::string& path, Backbone& backbone, Head& head, const ModelMeta& meta) {
  torch::jit::Module m("TlcModel");
  m.register_module("backbone", backbone.module());
  auto param = [&](const char* name, const at::Tensor& t) {
    m.register_parameter(name, t.detach().to(at::kCPU).clone(), /*is_buffer=*/false);
  };
  const bool hidden = static_cast<bool>(head->hidden_fc);
  if (hidden) {
    param("head_hidden_w", head->hidden_fc->weight);
    param("head_hidden_b", head->hidden_fc->bias);
  }
  param("head_w", head->fc->weight);
  param("head_b", head->fc->bias);
  NormalizeSpec spec = NormalizeSpec::from_mode(meta.normalize);
  m.register_buffer("norm_scale", at::tensor(std::vector<float>(spec.scale, spec.scale + 3)));
  m.register_buffer("norm_shift", at::tensor(std::vector<float>(spec.shift, spec.shift + 3)));
  m.register_attribute("norm_bgr", c10::BoolType::get(), spec.bgr);
  c10::List<std::string> names;
  for (const auto& c : meta.classes) names.push_back(c);
  m.register_attribute("class_names", c10::ListType::ofStrings(), names);
  m.register_attribute("image_size", c10::IntType::get(), meta.image_size);
  m.register_attribute("normalize", c10::StringType::get(), to_string(meta.normalize));
  m.register_attribute("resize", c10::StringType::get(), to_string(meta.resize));
  m.register_attribute("backbone_arch", c10::StringType::get(), meta.backbone_arch);
  m.register_attribute("backbone_weights", c10::StringType::get(), meta.backbone_weights);
  m.register_attribute("augment", c10::StringType::get(), meta.augment);
  m.register_attribute("tlc_format_version", c10::IntType::get(), kModelFormatVersion);
  m.define(model_source(hidden));
  m.eval();
  save_atomic(path, [&](const std::string& tmp) {
    try {
      m.save(tmp);
    } catch (const c10::Error& e) {
      throw Error("saving the model to " + path + " failed: " + first_line(e.what_without_backtrace()));
    }
  });
}

std::string resolve_model_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error("model file " + path + " not found; train one with: tlc train DATA_DIR --backbone FILE --out RUN_DIR");
  if (!fs::is_directory(path, ec)) return path;
  const fs::path model = fs::path(path) / "model.pt";
  if (fs::exists(model, ec)) return model.string();
  if (fs::exists(fs::path(path) / "checkpoint.pt", ec))
    throw Error(path + " is a run folder whose training was interrupted: it has checkpoint.pt but no model.pt yet; "
                "finish it with `tlc train --resume " + path + "`");
  throw Error(path + " is a folder without model.pt, not a model or a run folder; " + kModelUsage);
}

ModelFile ModelFile::load(const std::string& path_in) {
  const std::string path = resolve_model_path(path_in);
  const std::string kind = sniff(path);
  if (kind != "zip") {
    if (kind.find("image") != std::string::npos)
      throw Error(path + " is " + kind + ", not a model; " + kModelUsage);
    throw Error(path + " is " + (kind.empty() ? std::string("not a model file") : kind + ", not a model file") +
                " (a tlc model.pt is a TorchScript zip archive); " + kModelUsage);
  }
  ModelFile f;
  try {
    f.module_ = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    throw Error("model file " + path + " cannot be loaded: it is damaged (a truncated copy?) or not a TorchScript "
                "file; use the model.pt that `tlc train` writes. PyTorch says: " + short_reason(e.what_without_backtrace()));
  }
  for (const char* a : {"class_names", "image_size", "normalize", "norm_bgr", "tlc_format_version"})
    if (!f.module_.hasattr(a))
      throw Error(path + " is a TorchScript file but not a tlc model (it has no '" + a +
                  "'); a backbone alone cannot classify: use the model.pt that `tlc train` writes");
  if (f.module_.attr("tlc_format_version").toInt() > kModelFormatVersion)
    throw Error(path + " was written by a newer tlc (format " +
                std::to_string(f.module_.attr("tlc_format_version").toInt()) + "); upgrade tlc");
  for (const auto& s : f.module_.attr("class_names").toListRef()) f.meta_.classes.push_back(s.toStringRef());
  f.meta_.image_size = f.module_.attr("image_size").toInt();
  f.meta_.normalize = parse_normalize_mode(f.module_.attr("normalize").toStringRef());
  if (f.module_.hasattr("resize")) f.meta_.resize = parse_resize_mode(f.module_.attr("resize").toStringRef());
  if (f.module_.hasattr("backbone_arch")) f.meta_.backbone_arch = f.module_.attr("backbone_arch").toStringRef();
  if (f.module_.hasattr("backbone_weights")) f.meta_.backbone_weights = f.module_.attr("backbone_weights").toStringRef();
  if (f.module_.hasattr("augment")) f.meta_.augment = f.module_.attr("augment").toStringRef();
  f.module_.eval();
  f.path_ = path;
  return f;
}

at::Tensor ModelFile::logits(const at::Tensor& normalized) {
  torch::NoGradGuard ng;
  return module_.get_method("logits")({normalized}).toTensor();
}

void ModelFile::to(const c10::Device& device) {
  // A saved model predicts in float32, as Python's torch.jit.load(model.pt) does on the CPU: no TF32 on CUDA.
  if (device.is_cuda()) allow_tf32(false);
  module_.to(device);
  if (frozen_) frozen_->to(device);
  device_ = device;
}

void ModelFile::set_engine(const std::string& engine, const std::string& precision) {
  // The backbone module is shared with the file's module (a handle), so both see the same weights.
  frozen_ = std::make_shared<Backbone>(Backbone::from_module(module_.attr("backbone").toModule(), path_ + " (backbone)"));
  frozen_->request_engine(engine_request(engine, precision, device_), meta_.image_size);
}

void ModelFile::set_calibration(const std::vector<ImageItem>& items, int threads, const std::string& what) {
  if (!frozen_) throw Error("set_calibration needs set_engine first");
  DecodeOptions opt;
  opt.size = static_cast<int>(meta_.image_size);
  opt.resize = meta_.resize;
  int64_t used = 0;
  const at::Tensor c = calibration_batch(items, opt, spec(), threads, &used);
  frozen_->set_calibration(c, std::to_string(used) + " " + what);
}

std::string ModelFile::engine_line() {
  if (!frozen_) return "engine: torchscript fp32 (the model file's own module)";
  return frozen_->prepare_engine();
}

at::Tensor ModelFile::head_logits(const at::Tensor& pooled) {
  // The same arithmetic as the file's `logits` method (model_source above), on pooled features.
  at::Tensor f = pooled;
  if (module_.hasattr("head_hidden_w"))
    f = at::relu(at::matmul(f, module_.attr("head_hidden_w").toTensor().t()) + module_.attr("head_hidden_b").toTensor());
  return at::matmul(f, module_.attr("head_w").toTensor().t()) + module_.attr("head_b").toTensor();
}

at::Tensor ModelFile::proba_of(const at::Tensor& images_u8, const at::Tensor& views) {
  auto input = [&](at::ScalarType dtype, Layout layout) {
    return views.defined() ? augment(images_u8.to(device_), views, spec(), dtype, layout)
                           : normalize(images_u8.to(device_), spec(), dtype, layout);
  };
  if (!frozen_) return at::softmax(logits(input(at::kFloat, Layout::nchw)), 1).cpu();
  torch::NoGradGuard ng;
  at::Tensor x = input(frozen_->frozen_dtype(), frozen_->frozen_channels_last() ? Layout::nhwc : Layout::nchw);
  return at::softmax(head_logits(frozen_->pooled_features(x)), 1).cpu();
}

void ModelFile::set_tta(int views, const AugmentSpec& spec) {
  if (views < 0) throw Error("--tta must be >= 0");
  if (views > 0 && spec.none()) throw Error("--tta needs an augmentation to draw its views from; give --tta-augment");
  tta_views_ = views;
  tta_spec_ = spec;
}

AugmentSpec tta_augmentation(const ModelMeta& meta, const std::string& given) {
  if (!given.empty()) return parse_augment(given);
  const AugmentSpec trained = parse_augment(meta.augment);
  return trained.none() ? parse_augment("flip") : trained;
}

at::Tensor tta_blend(const at::Tensor& plain, const at::Tensor& augmented_mean) {
  return plain * kTtaPlainWeight + augmented_mean * (1 - kTtaPlainWeight);
}

at::Tensor ModelFile::predict_proba(const at::Tensor& images_u8, at::Tensor* plain) {
  at::Tensor p = proba_of(images_u8, at::Tensor());
  if (tta_views_ == 0) return p;
  const std::vector<uint64_t> keys = pixel_keys(images_u8);
  at::Tensor sum = at::zeros_like(p);
  for (int v = 0; v < tta_views_; ++v)
    sum += proba_of(images_u8, view_params(tta_spec_, images_u8.size(1), images_u8.size(2), kTtaSeed, keys,
                                           std::vector<int64_t>(keys.size(), v)));
  if (plain) *plain = p;
  return tta_blend(p, sum / tta_views_);
}

}  // namespace tlc
