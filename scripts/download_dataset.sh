#!/usr/bin/env bash
# Fetches and unpacks a named dataset where a network exists:
#   cats_vs_dogs  Microsoft's Kaggle Cats and Dogs (PetImages/Cat, PetImages/Dog; ~25k JPEGs, some broken,
#                 which tlc skips and lists)
#   tf_flowers    TensorFlow's flower_photos (5 classes, LICENSE.txt at its root)
# Usage: scripts/download_dataset.sh cats_vs_dogs|tf_flowers [DEST_DIR]   (default DEST_DIR: datasets/)
# Then: tlc train DEST_DIR/<name> --backbone ...  (the PetImages/ and flower_photos/ folders are found inside)
set -euo pipefail
name=${1:-}
dest=${2:-datasets}
case "$name" in
  cats_vs_dogs)
    url="https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
    archive="kagglecatsanddogs_5340.zip" ;;
  tf_flowers)
    url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
    archive="flower_photos.tgz" ;;
  *)
    echo "usage: $0 cats_vs_dogs|tf_flowers [DEST_DIR]" >&2
    exit 2 ;;
esac
mkdir -p "$dest/$name"
tmp="$dest/$name/.$archive.part"
echo "downloading $name from $url"
fetch() {
  if command -v curl >/dev/null; then curl -fL --connect-timeout 20 --retry 2 -o "$tmp" "$url"
  elif command -v wget >/dev/null; then wget -q --timeout=20 -O "$tmp" "$url"
  else echo "error: neither curl nor wget is installed (apt-get install curl)" >&2; return 1; fi
}
if ! fetch; then
  rm -f "$tmp"
  echo "error: could not download $url: this machine seems to have no network access to it." >&2
  echo "       Download $archive elsewhere and unpack it into $dest/$name/, then run tlc train $dest/$name" >&2
  exit 1
fi
mv "$tmp" "$dest/$name/$archive"
echo "unpacking into $dest/$name"
case "$archive" in
  *.zip) (cd "$dest/$name" && python3 -m zipfile -e "$archive" .) ;;
  *.tgz) tar -C "$dest/$name" -xzf "$dest/$name/$archive" ;;
esac
rm -f "$dest/$name/$archive"
echo "ready: tlc train $dest/$name --backbone BACKBONE.pt"
