#include "tlc/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <system_error>

#include "tlc/error.h"
#include "tlc/formats.h"
#include "tlc/text.h"
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

bool is_split_name(const std::string& n) {
  for (const char* s : {"train", "training", "test", "testing", "val", "valid", "validation", "dev", "eval"})
    if (n == s) return true;
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

// One class folder's listing, with where its images lie: directly inside, or in which sub-folders.
struct ClassListing {
  fs::path dir;
  ImageFolder one;
  size_t direct = 0;
  std::set<std::string> sub_folders;  // sub-folders (first level) that hold images
};

ClassListing list_class_folder(const fs::path& dir, int64_t label) {
  ClassListing c;
  c.dir = dir;
  for (auto& f : list_image_files(dir.string(), &c.one.ignored)) {
    const fs::path rel = fs::path(f).lexically_relative(dir);
    if (rel.has_parent_path()) c.sub_folders.insert(rel.begin()->string());
    else ++c.direct;
    c.one.items.push_back({std::move(f), label});
  }
  return c;
}

// A folder passed one level too high: data/ holding train/ and test/ that each hold the class folders (a
// Kaggle-style download), or data/ holding a single folder that holds the class folders. Training would
// silently learn "train vs test", so this stops with the folder to give instead.
void check_not_one_level_too_high(const fs::path& root, const std::vector<ClassListing>& listed, size_t with_images,
                                  int min_classes) {
  if (listed.empty()) return;
  bool all_nested = true, split_names = true;
  for (const auto& c : listed) {
    all_nested = all_nested && c.direct == 0 && !c.sub_folders.empty();
    split_names = split_names && is_split_name(c.dir.filename().string());
  }
  if (!all_nested) return;
  const std::vector<std::string> subs(listed[0].sub_folders.begin(), listed[0].sub_folders.end());
  if (listed.size() == 1 && static_cast<int>(with_images) < min_classes && subs.size() >= 2) {
    throw Error("data folder " + root.string() + " holds a single folder, " + listed[0].dir.filename().string() +
                ", whose images lie in its sub-folders (" + join(subs) + "), which look like the class folders; give " +
                listed[0].dir.string() + " as the data folder");
  }
  // Only split names (train/test/val...) stop the run: class folders that merely share sub-folder names
  // (cat/{2019,2020}, dog/{2019,2020}) are a valid layout, and no flag could say otherwise.
  if (listed.size() < 2 || !split_names) return;
  std::vector<std::string> names;
  const ClassListing* train = &listed[0];
  for (const auto& c : listed) {
    names.push_back(c.dir.filename().string());
    if (c.one.items.size() > train->one.items.size()) train = &c;
  }
  for (const auto& c : listed)
    if (c.dir.filename() == "train" || c.dir.filename() == "training") train = &c;
  std::string others;
  for (const auto& c : listed) {
    if (&c == train) continue;
    const std::string n = c.dir.filename().string();
    const bool is_test = n.rfind("test", 0) == 0 || n == "eval";
    others += std::string(others.empty() ? "" : ", ") + (is_test ? "--test-dir " : "--val-dir ") + c.dir.string();
  }
  throw Error("data folder " + root.string() + " holds " + join(names) +
              ", and each holds only sub-folders of images (" + join(subs) +
              "): these look like the class folders, one level down (a dataset already split). Training here would "
              "learn to tell " + join(names) + " apart; give " + train->dir.string() +
              " as the data folder, with the other part(s) as " + others);
}

}  // namespace

std::vector<std::string> list_image_files(const std::string& dir, std::vector<SkippedFile>* ignored) {
  std::vector<std::string> files;
  auto skip = [&](const fs::path& p, const std::string& why) {
    if (ignored) ignored->push_back({p.string(), why});
  };
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) throw Error("cannot read folder " + dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) {
      skip(dir, "could not list: " + ec.message());
      break;
    }
    const fs::path& p = it->path();
    if (is_hidden(p)) {  // .DS_Store, macOS's ._name resource forks, .git: never images
      if (it->is_directory(ec)) it.disable_recursion_pending();
      skip(p, "hidden file");
      continue;
    }
    if (it->is_directory(ec)) continue;
    if (!has_image_extension(p.string())) {
      skip(p, "not an image file (extension)");
      continue;
    }
    files.push_back(p.string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

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
  std::vector<ClassListing> listed;
  for (auto& d : class_dirs) {
    ClassListing c = list_class_folder(d, static_cast<int64_t>(out.classes.size()));
    out.ignored.insert(out.ignored.end(), c.one.ignored.begin(), c.one.ignored.end());
    if (c.one.items.empty()) {
      out.ignored.push_back({d.string(), std::string(kEmptyClassReason)});
      continue;
    }
    // The class name travels into the model file and JSON, which need UTF-8; the folder name may not be.
    out.classes.push_back(escape_name(d.filename().string()));
    out.class_folders.push_back(d.filename().string());
    out.items.insert(out.items.end(), c.one.items.begin(), c.one.items.end());
    listed.push_back(std::move(c));
  }
  check_not_one_level_too_high(out.root, listed, out.classes.size(), min_classes);
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
  std::vector<std::string> unknown;
  for (size_t i = 0; i < f.classes.size(); ++i) {
    auto it = std::find(classes.begin(), classes.end(), f.classes[i]);
    if (it == classes.end()) unknown.push_back(f.classes[i]);
    else remap[i] = it - classes.begin();
  }
  if (!unknown.empty())
    throw Error("folder " + f.root + " has the classes [" + join(f.classes) + "], but the model (or the training folder) has [" +
                join(classes) + "]; " + join(unknown) + (unknown.size() == 1 ? " is" : " are") +
                " not among them: give a folder whose class sub-folders are among the model's");
  for (auto& item : f.items) item.label = remap[item.label];
  f.classes = classes;
  return f;
}

Split split_stratified(const std::vector<ImageItem>& items, int64_t num_classes, double val_fraction,
                       double test_fraction, uint64_t seed,
                       const std::vector<std::string>& class_names) {
  if (val_fraction < 0 || test_fraction < 0 || val_fraction + test_fraction >= 1.0)
    throw Error("validation and test fractions must be >= 0 and add up to less than 1 (got " +
                format_number(val_fraction) + " and " + format_number(test_fraction) + ")");
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
                  "validation split of " + format_number(val_fraction) + " and a test split of " +
                  format_number(test_fraction) + " (it needs at least " + std::to_string(n_test + n_val + 1) +
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
