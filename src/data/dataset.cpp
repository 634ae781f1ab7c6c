#include "tlc/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <system_error>

#include "tlc/error.h"
#include "tlc/formats.h"
#include "tlc/util.h"

namespace fs = std::filesystem;

namespace tlc {
namespace {

bool is_hidden(const fs::path& p) {
  std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Lists the image files under one class folder, recursing into sub-folders (some archives nest), without
// following symbolic links to folders (a link loop would never end).
void list_class_folder(const fs::path& dir, int64_t label, ImageFolder& out) {
  std::vector<fs::path> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) throw Error("cannot read class folder " + dir.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) {
      out.ignored.push_back({dir.string(), "could not list: " + ec.message()});
      break;
    }
    const fs::path& p = it->path();
    if (is_hidden(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      out.ignored.push_back({p.string(), "hidden file"});
      continue;
    }
    if (it->is_directory(ec)) continue;
    if (!has_image_extension(p.string())) {
      out.ignored.push_back({p.string(), "not an image file (extension)"});
      continue;
    }
    files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  for (auto& f : files) out.items.push_back({f.string(), label});
}

}  // namespace

bool has_image_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp" || ext == ".tif" ||
         ext == ".tiff" || ext == ".gif";
}

std::string resolve_layout(const std::string& root, std::string* note) {
  fs::path r(root);
  if (is_dir(r / "PetImages")) {
    if (note) *note = "PetImages layout (cats_vs_dogs): reading " + (r / "PetImages").string();
    return (r / "PetImages").string();
  }
  if (is_dir(r / "flower_photos")) {
    if (note) *note = "flower_photos layout (tf_flowers): reading " + (r / "flower_photos").string();
    return (r / "flower_photos").string();
  }
  return root;
}

ImageFolder list_image_folder(const std::string& root_in, int min_classes) {
  if (root_in.empty()) throw Error("no data folder given");
  std::error_code ec;
  if (!fs::exists(root_in, ec))
    throw Error("data folder " + root_in + " does not exist; give a folder with one sub-folder per class");
  if (!is_dir(root_in))
    throw Error(root_in + " is a file, not a folder; give a folder with one sub-folder per class");
  ImageFolder out;
  out.root = resolve_layout(root_in, &out.layout_note);
  std::vector<fs::path> class_dirs;
  for (auto it = fs::directory_iterator(out.root, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    if (is_hidden(p)) {
      out.ignored.push_back({p.string(), "hidden file"});
    } else if (is_dir(p)) {
      class_dirs.push_back(p);
    } else {
      out.ignored.push_back({p.string(), "stray file at the dataset root (not in a class folder)"});
    }
  }
  if (ec) throw Error("cannot read data folder " + out.root + ": " + ec.message());
  if (class_dirs.empty())
    throw Error("data folder " + out.root +
                " has no class sub-folders; expected one sub-folder per class (e.g. " + out.root + "/cat, " +
                out.root + "/dog) holding images");
  std::sort(class_dirs.begin(), class_dirs.end());
  for (auto& d : class_dirs) {
    ImageFolder one;
    list_class_folder(d, static_cast<int64_t>(out.classes.size()), one);
    out.ignored.insert(out.ignored.end(), one.ignored.begin(), one.ignored.end());
    if (one.items.empty()) {
      out.ignored.push_back({d.string(), "empty class folder (no images): class dropped"});
      continue;
    }
    out.classes.push_back(d.filename().string());
    out.items.insert(out.items.end(), one.items.begin(), one.items.end());
  }
  if (static_cast<int>(out.classes.size()) < min_classes) {
    std::string found = out.classes.empty() ? "none" : out.classes[0];
    for (size_t i = 1; i < out.classes.size(); ++i) found += ", " + out.classes[i];
    const std::string formats = unsupported_formats_note(out.ignored);
    throw Error("data folder " + out.root + " has " + std::to_string(out.classes.size()) +
                " class folder(s) with images (" + found + ")" + (formats.empty() ? "" : ": " + formats) +
                "; a classifier needs at least " + std::to_string(min_classes) +
                ": add one sub-folder of images per class");
  }
  return out;
}

ImageFolder list_image_folder_with_classes(const std::string& root, const std::vector<std::string>& classes) {
  ImageFolder f = list_image_folder(root, 1);
  std::vector<int64_t> remap(f.classes.size());
  for (size_t i = 0; i < f.classes.size(); ++i) {
    auto it = std::find(classes.begin(), classes.end(), f.classes[i]);
    if (it == classes.end())
      throw Error("folder " + f.root + " has class '" + f.classes[i] +
                  "', which the training folder does not have; the class folders must match");
    remap[i] = it - classes.begin();
  }
  for (auto& item : f.items) item.label = remap[item.label];
  f.classes = classes;
  return f;
}

Split split_stratified(const std::vector<ImageItem>& items, int64_t num_classes, double val_fraction,
                       double test_fraction, uint64_t seed,
                       const std::vector<std::string>& class_names) {
  if (val_fraction < 0 || test_fraction < 0 || val_fraction + test_fraction >= 1.0)
    throw Error("validation and test fractions must be >= 0 and add up to less than 1 (got " +
                std::to_string(val_fraction) + " and " + std::to_string(test_fraction) + ")");
  std::vector<std::vector<ImageItem>> by_class(num_classes);
  for (const auto& it : items) by_class.at(it.label).push_back(it);
  Split s;
  for (int64_t c = 0; c < num_classes; ++c) {
    auto& v = by_class[c];
    std::sort(v.begin(), v.end(), [](const ImageItem& a, const ImageItem& b) { return a.path < b.path; });
    Rng rng(seed * 1000003ULL + static_cast<uint64_t>(c));
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
    const int64_t n = static_cast<int64_t>(v.size());
    int64_t n_test = std::llround(n * test_fraction);
    int64_t n_val = std::llround(n * val_fraction);
    if (test_fraction > 0 && n_test == 0) n_test = 1;
    if (val_fraction > 0 && n_val == 0) n_val = 1;
    if (n - n_test - n_val < 1)
      throw Error("class '" + (c < (int64_t)class_names.size() ? class_names[c] : std::to_string(c)) + "' has " + std::to_string(n) + " image(s), too few for a " +
                  "validation split of " + std::to_string(val_fraction) + " and a test split of " +
                  std::to_string(test_fraction) + " (it needs at least " + std::to_string(n_test + n_val + 1) +
                  "); add images, lower --val-split/--test-split, or give --val-dir/--test-dir");
    s.test.insert(s.test.end(), v.begin(), v.begin() + n_test);
    s.val.insert(s.val.end(), v.begin() + n_test, v.begin() + n_test + n_val);
    s.train.insert(s.train.end(), v.begin() + n_test + n_val, v.end());
  }
  return s;
}

std::vector<int64_t> count_per_class(const std::vector<ImageItem>& items, int64_t num_classes) {
  std::vector<int64_t> c(num_classes, 0);
  for (const auto& it : items)
    if (it.label >= 0 && it.label < num_classes) ++c[it.label];
  return c;
}

}  // namespace tlc
