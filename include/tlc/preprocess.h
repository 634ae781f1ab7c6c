#pragma once
// The preprocessing a training run settles on before it starts: the normalization (from --normalize, the
// backbone file's metadata, or the default), with the sentence that tells the user where it came from.
#include <string>

#include "tlc/backbone.h"
#include "tlc/normalize.h"

namespace tlc {

struct NormalizeChoice {
  NormalizeMode mode = NormalizeMode::minus1to1;
  std::string origin;   // for the config block: "from the backbone file", "from --normalize", ...
  std::string warning;  // non-empty when the user should hear about the choice (an assumption, a mismatch)
};

// `requested`: auto | minus1to1 | imagenet | caffe. With auto and a backbone file that does not say what it
// expects (any TorchScript file not written by scripts/export_backbone.py), minus1to1 is assumed and the
// warning names the flag that chooses: torchvision weights need imagenet, Keras VGG/ResNet weights caffe.
NormalizeChoice choose_normalize(const std::string& requested, const BackboneInfo& backbone);

}  // namespace tlc
