// The TorchScript engine: the reference every other engine is compared with. In float32 it runs the module
// itself; in a reduced precision, a copy of it in that dtype with channels-last convolution weights (like its
// input), whose output comes back as float32.
#include "tlc/engine.h"

namespace tlc {
namespace {

class TorchScriptEngine final : public FrozenEngine {
 public:
  TorchScriptEngine(torch::jit::Module module, at::ScalarType dtype) : module_(std::move(module)), dtype_(dtype) {
    if (dtype_ == at::kFloat) return;
    reduced_ = module_.deepcopy();
    reduced_.to(dtype_);
    reduced_.eval();
    // Channels-last weights spare cuDNN and oneDNN a layout conversion per call.
    for (auto p : reduced_.parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }

  at::Tensor forward(const at::Tensor& x) override {
    torch::NoGradGuard ng;
    if (dtype_ == at::kFloat) return module_.forward({x}).toTensor();
    if (stale_) refresh();
    at::Tensor xr = x.to(dtype_).contiguous(at::MemoryFormat::ChannelsLast);
    return reduced_.forward({xr}).toTensor().to(at::kFloat);
  }
  at::ScalarType input_dtype() const override { return dtype_; }
  bool channels_last() const override { return dtype_ != at::kFloat; }
  void weights_changed() override { stale_ = dtype_ != at::kFloat; }
  void to(const c10::Device& device) override {
    if (dtype_ != at::kFloat) reduced_.to(device);  // the module itself is moved by its owner
  }
  std::string name() const override {
    return std::string("torchscript ") + (dtype_ == at::kFloat ? "fp32" : dtype_ == at::kBFloat16 ? "bf16" : "fp16");
  }

 private:
  torch::jit::Module module_;
  at::ScalarType dtype_;
  torch::jit::Module reduced_;
  bool stale_ = false;

  void refresh() {
    // Same structure (a deep copy): parameters and buffers pair up in order; copy_ converts the dtype and keeps
    // the destination's layout.
    torch::NoGradGuard ng;
    auto src = module_.parameters();
    auto dst = reduced_.parameters();
    for (auto s = src.begin(), d = dst.begin(); s != src.end() && d != dst.end(); ++s, ++d) (*d).copy_(*s);
    auto bsrc = module_.buffers();
    auto bdst = reduced_.buffers();
    for (auto s = bsrc.begin(), d = bdst.begin(); s != bsrc.end() && d != bdst.end(); ++s, ++d) (*d).copy_(*s);
    stale_ = false;
  }
};

}  // namespace

std::unique_ptr<FrozenEngine> make_torchscript_engine(torch::jit::Module module, at::ScalarType dtype) {
  return std::make_unique<TorchScriptEngine>(std::move(module), dtype);
}

}  // namespace tlc
