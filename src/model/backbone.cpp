#include "tlc/backbone.h"

#include <filesystem>

#include "tlc/error.h"

namespace tlc {
namespace {

const char* kExportHint = "make one with: scripts/export_backbone.py --arch vgg16|efficientnet_lite0 "
                          "--weights imagenet|random --out FILE";

template <typename T>
bool read_attr(const torch::jit::Module& m, const char* name, T& out);

template <>
bool read_attr<std::string>(const torch::jit::Module& m, const char* name, std::string& out) {
  if (!m.hasattr(name)) return false;
  auto v = m.attr(name);
  if (!v.isString()) return false;
  out = v.toStringRef();
  return true;
}

template <>
bool read_attr<int64_t>(const torch::jit::Module& m, const char* name, int64_t& out) {
  if (!m.hasattr(name)) return false;
  auto v = m.attr(name);
  if (!v.isInt()) return false;
  out = v.toInt();
  return true;
}

void freeze(torch::jit::Module& m) {
  for (auto p : m.parameters()) p.set_requires_grad(false);
  m.eval();
}

}  // namespace

std::string module_type_name(const torch::jit::Module& m) {
  auto t = m.type();
  if (!t->name()) return "Module";
  std::string q = t->name()->name();
  return q;
}

Backbone Backbone::from_module(torch::jit::Module module, const std::string& origin) {
  Backbone b;
  b.module_ = std::move(module);
  b.info_.path = origin;
  freeze(b.module_);
  read_attr(b.module_, "tlc_arch", b.info_.arch);
  read_attr(b.module_, "tlc_weights", b.info_.weights);
  read_attr(b.module_, "tlc_normalize", b.info_.normalize);
  read_attr(b.module_, "tlc_input_size", b.info_.input_size);
  read_attr(b.module_, "tlc_output_channels", b.info_.output_channels);
  // Probe: the file must map an image batch to a feature map; the probe also finds the width of files that
  // carry no metadata.
  at::Tensor y;
  try {
    torch::NoGradGuard ng;
    auto out = b.module_.forward({torch::zeros({1, 3, 64, 64})});
    if (!out.isTensor())
      throw Error("backbone " + origin + " returns " + out.tagKind() + ", expected a tensor [N,C,h,w]; " + kExportHint);
    y = out.toTensor();
  } catch (const c10::Error& e) {
    throw Error("backbone " + origin + " failed on a [1,3,64,64] test input: " +
                std::string(e.what_without_backtrace()).substr(0, 300) + "; " + kExportHint);
  }
  if (y.dim() != 4)
    throw Error("backbone " + origin + " returns a " + std::to_string(y.dim()) + "-D tensor " + c10::str(y.sizes()) +
                " for a [1,3,64,64] input; tlc needs the convolutional base without its classifier, giving [N,C,h,w]; " +
                kExportHint);
  if (b.info_.output_channels == 0) b.info_.output_channels = y.size(1);
  if (b.info_.output_channels != y.size(1))
    throw Error("backbone " + origin + " says it has " + std::to_string(b.info_.output_channels) +
                " output channels but gives " + std::to_string(y.size(1)) + "; re-export it");
  return b;
}

Backbone Backbone::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error("backbone file " + path + " not found; " + kExportHint);
  if (std::filesystem::is_directory(path, ec))
    throw Error("backbone " + path + " is a folder, expected a TorchScript .pt file; " + kExportHint);
  torch::jit::Module m;
  try {
    m = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    std::string why = e.what_without_backtrace();
    auto nl = why.find('\n');
    if (nl != std::string::npos) why = why.substr(0, nl);
    throw Error("backbone " + path + " is not a TorchScript file that LibTorch can load (" + why.substr(0, 200) +
                "); a state_dict or pickled nn.Module will not do: " + kExportHint);
  }
  return from_module(std::move(m), path);
}

std::vector<LayerInfo> Backbone::layers() const {
  std::vector<LayerInfo> out;
  int idx = 0;
  for (const auto& nm : module_.named_modules()) {
    if (nm.name.empty()) continue;  // the root
    if (nm.value.children().size() != 0) continue;
    LayerInfo li;
    li.index = idx++;
    li.name = nm.name;
    li.type = module_type_name(nm.value);
    for (const auto& p : nm.value.named_parameters(/*recurse=*/false)) {
      li.params += p.value.numel();
      li.trainable = li.trainable || p.value.requires_grad();
    }
    out.push_back(li);
  }
  return out;
}

int64_t Backbone::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : module_.parameters()) n += p.numel();
  return n;
}

at::Tensor Backbone::forward(const at::Tensor& x) {
  torch::NoGradGuard ng;
  return module_.forward({x}).toTensor();
}

at::Tensor Backbone::pooled_features(const at::Tensor& x) { return forward(x).mean({2, 3}); }

void Backbone::to(const c10::Device& device) { module_.to(device); }

}  // namespace tlc
