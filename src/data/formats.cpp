#include "tlc/formats.h"

#include <algorithm>
#include <filesystem>
#include <map>

namespace tlc {
namespace {

// Image formats people have in photo folders that tlc does not decode: extension -> name.
const std::map<std::string, std::string>& unsupported_image_formats() {
  static const std::map<std::string, std::string> m = {
      {".heic", "HEIC"}, {".heif", "HEIF"}, {".avif", "AVIF"},     {".jxl", "JPEG XL"}, {".jp2", "JPEG 2000"},
      {".svg", "SVG"},   {".psd", "PSD"},   {".ico", "ICO"},       {".exr", "OpenEXR"}, {".cr2", "Canon RAW"},
      {".nef", "Nikon RAW"}, {".arw", "Sony RAW"}, {".dng", "DNG RAW"}, {".raw", "RAW"}, {".pdf", "PDF"}};
  return m;
}

}  // namespace

std::string unsupported_formats_note(const std::vector<SkippedFile>& skipped) {
  std::map<std::string, int> count;
  for (const auto& s : skipped) {
    if (s.reason.rfind("not an image file", 0) != 0) continue;
    std::string ext = std::filesystem::path(s.path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (unsupported_image_formats().count(ext)) ++count[ext];
  }
  std::string note;
  for (const auto& [ext, n] : count)
    note += (note.empty() ? "" : "; ") + std::to_string(n) + " " + ext + " file" + (n == 1 ? "" : "s") + ": " +
            unsupported_image_formats().at(ext) + " is not supported";
  if (!note.empty()) note += " (tlc reads JPEG, PNG, BMP, WebP, TIFF and GIF: convert them, e.g. to JPEG)";
  return note;
}

}  // namespace tlc
