#include "tlc/backbone.h"

#include <filesystem>

#include "tlc/error.h"

namespace tlc {
namespace {

const char* kExportHint = "make one with: scripts/export_backbone.py --arch NAME --weights imagenet|random --out FILE "
                          "(--list shows the archs)";

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

namespace {

// The file `tlc inspect` takes for a backbone named `origin`: a backbone file, or a model file whose backbone
// it is (TransferClassifier::load names those "MODEL (backbone)").
const char kInModel[] = " (backbone)";
bool inside_model(const std::string& origin) {
  const size_t n = sizeof(kInModel) - 1;
  return origin.size() > n && origin.compare(origin.size() - n, n, kInModel) == 0;
}
std::string inspect_cmd(const std::string& origin) {
  return "`tlc inspect " + (inside_model(origin) ? origin.substr(0, origin.size() - (sizeof(kInModel) - 1)) : origin) +
         "`";
}

}  // namespace

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
  b.parameter_tensors();  // filled now: later const readers only read it
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
    LayerInfo li;
    li.name = nm.name;
    li.type = module_type_name(nm.value);
    for (const auto& p : nm.value.named_parameters(/*recurse=*/false)) {
      li.params += p.value.numel();
      li.trainable = li.trainable || p.value.requires_grad();
    }
    // Containers are not layers unless they hold parameters of their own (ConvNeXt's layer scale, attention's
    // input projection, a 'same'-padding conv with its padding child): those would otherwise be counted by no
    // layer and never unfrozen.
    if (nm.value.children().size() != 0 && li.params == 0) continue;
    li.index = idx++;
    out.push_back(li);
  }
  return out;
}

int64_t Backbone::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : module_.parameters()) n += p.numel();
  return n;
}

FrozenEngine* Backbone::frozen_engine() const {
  if (any_trainable()) return nullptr;
  prepare_engine();
  return engine_.get();
}

at::Tensor Backbone::forward(const at::Tensor& x) {
  if (any_trainable()) return module_.forward({x}).toTensor();
  torch::NoGradGuard ng;
  if (FrozenEngine* e = frozen_engine()) return e->forward(x);
  return module_.forward({x}).toTensor();
}

std::vector<at::Tensor> Backbone::unfreeze_last(int n) {
  // Weights may have changed since the engine was built whenever something trained, the phase ending now too.
  const bool weights_may_change = n > 0 || any_trainable();
  for (auto p : module_.parameters()) p.set_requires_grad(false);
  module_.eval();
  if (n < 0) throw Error("--fine-tune-layers must be >= 0");
  std::vector<LayerInfo> with_params;
  for (const auto& l : layers())
    if (l.params > 0) with_params.push_back(l);
  if (n > static_cast<int>(with_params.size()))
    throw Error("--fine-tune-layers " + std::to_string(n) + " asks for more layers than backbone " + info_.path +
                " has with parameters (" + std::to_string(with_params.size()) + "); " + inspect_cmd(info_.path) +
                " lists them");
  std::vector<at::Tensor> params;
  if (weights_may_change) {
    if (engine_) engine_->weights_changed();
    prefix_engines_.clear();
  }
  for (size_t i = with_params.size() - n; i < with_params.size(); ++i) {
    for (const auto& nm : module_.named_modules()) {
      if (nm.name != with_params[i].name) continue;
      for (const auto& p : nm.value.named_parameters(/*recurse=*/false)) {
        at::Tensor t = p.value;
        t.set_requires_grad(true);
        params.push_back(t);
      }
    }
  }
  return params;
}

std::vector<at::Tensor> Backbone::trainable_parameters() const {
  std::vector<at::Tensor> v;
  for (const auto& p : parameter_tensors())
    if (p.requires_grad()) v.push_back(p);
  return v;
}

const std::vector<at::Tensor>& Backbone::parameter_tensors() const {
  // Module::to keeps the tensors (it swaps their data), so only another module object needs a new list.
  if (params_of_.get() != module_._ivalue().get()) {
    params_.clear();
    for (const auto& p : module_.parameters()) params_.push_back(p);
    params_of_ = module_._ivalue();
  }
  return params_;
}

bool Backbone::any_trainable() const {
  for (const auto& p : parameter_tensors())
    if (p.requires_grad()) return true;
  return false;
}

int64_t Backbone::layers_with_parameters() const {
  int64_t n = 0;
  for (const auto& l : layers()) n += l.params > 0;
  return n;
}

namespace {

// The Sequential whose children are the backbone's blocks, if it has one: its `blocks` (the block layout of
// export_backbone.py), the module itself, or its `body` (the flat layout: VGG, the test nets).
bool sequential_body(const torch::jit::Module& m, torch::jit::Module& body, std::string& prefix) {
  if (module_type_name(m) == "Sequential") {
    body = m;
    prefix = "";
    return true;
  }
  for (const char* attr : {"blocks", "body"}) {
    if (!m.hasattr(attr) || !m.attr(attr).isModule()) continue;
    auto b = m.attr(attr).toModule();
    if (module_type_name(b) == "Sequential") {
      body = b;
      prefix = std::string(attr) + ".";
      return true;
    }
  }
  return false;
}

}  // namespace

int64_t Backbone::sequential_length() const {
  torch::jit::Module body;
  std::string prefix;
  if (!sequential_body(module_, body, prefix)) return -1;
  return static_cast<int64_t>(body.children().size());
}

std::vector<BlockInfo> Backbone::blocks() const {
  std::vector<BlockInfo> out;
  torch::jit::Module body;
  std::string prefix;
  if (!sequential_body(module_, body, prefix)) return out;
  const auto all_layers = layers();
  int idx = 0;
  for (const auto& nm : body.named_children()) {
    BlockInfo bi;
    bi.index = idx++;
    bi.name = prefix + nm.name;
    bi.type = module_type_name(nm.value);
    for (const auto& p : nm.value.parameters()) {
      bi.params += p.numel();
      bi.trainable = bi.trainable || p.requires_grad();
    }
    const std::string inside = bi.name + ".";
    for (const auto& l : all_layers)
      if (l.params > 0 && (l.name == bi.name || l.name.rfind(inside, 0) == 0)) ++bi.layers_with_params;
    out.push_back(bi);
  }
  return out;
}

int Backbone::layers_in_last_blocks(int n) const {
  if (n < 0) throw Error("--fine-tune-blocks must be >= 0");
  const auto bl = blocks();
  if (bl.empty())
    throw Error("backbone " + info_.path + " has no blocks (a file from before the block layout); " +
                (inside_model(info_.path) ? std::string("use --fine-tune-layers (") + inspect_cmd(info_.path) +
                                                " lists the layers)"
                                          : "re-export it with scripts/export_backbone.py, or use --fine-tune-layers"));
  int with_params = 0, layers = 0;
  for (auto it = bl.rbegin(); it != bl.rend() && with_params < n; ++it) {
    if (it->params == 0) continue;
    ++with_params;
    layers += static_cast<int>(it->layers_with_params);
  }
  if (with_params < n)
    throw Error("--fine-tune-blocks " + std::to_string(n) + " asks for more blocks than backbone " + info_.path +
                " has with parameters (" + std::to_string(with_params) + "); " + inspect_cmd(info_.path) +
                " lists them");
  return layers;
}

int64_t Backbone::first_trainable_child() const {
  torch::jit::Module body;
  std::string prefix;
  if (!sequential_body(module_, body, prefix)) return -1;
  int64_t k = 0;
  for (const auto& child : body.children()) {
    for (const auto& p : child.parameters())
      if (p.requires_grad()) return k;
    ++k;
  }
  return k;  // nothing trains: the whole body is prefix
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Backbone::layer_output_shapes(int64_t size) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  torch::jit::Module body;
  std::string prefix;
  if (!sequential_body(module_, body, prefix)) return out;
  torch::NoGradGuard ng;
  at::Tensor y = at::zeros({1, 3, size, size});
  for (const auto& nm : body.named_children()) {
    torch::jit::Module child = nm.value;
    y = child.forward({y}).toTensor();
    out.push_back({prefix + nm.name, y.sizes().vec()});
  }
  return out;
}

at::Tensor Backbone::forward_range(const at::Tensor& x, int64_t begin, int64_t end) {
  torch::jit::Module body;
  std::string prefix;
  if (!sequential_body(module_, body, prefix))
    throw Error("backbone " + info_.path + " has no blocks (a file from before the block layout): it cannot run in "
                "parts; re-export it with scripts/export_backbone.py");
  return forward_blocks(module_, x, begin, end);
}

at::Tensor forward_blocks(torch::jit::Module module, const at::Tensor& x, int64_t begin, int64_t end) {
  torch::jit::Module body;
  std::string prefix;
  if (!sequential_body(module, body, prefix)) return module.forward({x}).toTensor();
  at::Tensor y = x;
  int64_t k = 0;
  for (auto child : body.children()) {
    if (k >= begin && k < end) y = child.forward({y}).toTensor();
    ++k;
  }
  return y;
}

at::Tensor Backbone::pooled_features(const at::Tensor& x) {
  if (FrozenEngine* e = frozen_engine()) {
    torch::NoGradGuard ng;
    return e->pooled(x);
  }
  return forward(x).mean({2, 3});
}

void Backbone::to(const c10::Device& device) {
  module_.to(device);
  if (engine_) engine_->to(device);
}

}  // namespace tlc
