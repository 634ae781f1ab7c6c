#include "tlc/model_file.h"

#include <filesystem>

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

ModelFile ModelFile::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error("model file " + path + " not found; train one with: tlc train DATA_DIR --backbone FILE --out RUN_DIR");
  ModelFile f;
  try {
    f.module_ = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    throw Error("model file " + path + " cannot be loaded (" + first_line(e.what_without_backtrace()).substr(0, 200) +
                "); it is damaged or not a TorchScript file: use the model.pt that `tlc train` writes");
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
  f.module_.eval();
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
  device_ = device;
}

at::Tensor ModelFile::predict_proba(const at::Tensor& images_u8) {
  at::Tensor x = normalize(images_u8.to(device_), spec(), at::kFloat, Layout::nchw);
  return at::softmax(logits(x), 1).cpu();
}

}  // namespace tlc
