#include "tlc/preprocess.h"

namespace tlc {

NormalizeChoice choose_normalize(const std::string& requested, const BackboneInfo& bi) {
  NormalizeChoice c;
  if (requested != "auto") {
    c.mode = parse_normalize_mode(requested);
    c.origin = "from --normalize";
    if (!bi.normalize.empty() && bi.normalize != requested)
      c.warning = "the backbone expects " + bi.normalize + " normalization but --normalize " + requested + " was given";
    return c;
  }
  if (!bi.normalize.empty()) {
    c.mode = parse_normalize_mode(bi.normalize);
    c.origin = "from the backbone file";
    return c;
  }
  // Wrong normalization does not fail: it trains quietly to a worse model. Say what was assumed.
  c.mode = NormalizeMode::minus1to1;
  c.origin = "assumed; the backbone file does not say";
  c.warning = "backbone " + bi.path +
              " does not say which pixel normalization it expects; assuming minus1to1 (x/127.5-1, Keras "
              "MobileNet/EfficientNet style). Choose with --normalize imagenet (torchvision weights), "
              "--normalize caffe (Keras VGG16/ResNet50 weights) or --normalize minus1to1; files exported by "
              "scripts/export_backbone.py record it";
  return c;
}

}  // namespace tlc
