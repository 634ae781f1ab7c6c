#include "tlc/labels.h"
#include "tlc/util.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "tlc/error.h"

namespace fs = std::filesystem;

namespace tlc {
namespace {

bool is_hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

void check_root(const std::string& root) {
  std::error_code ec;
  if (root.empty()) throw Error("no data folder given");
  if (!fs::is_directory(root, ec))
    throw Error("data folder " + root + (fs::exists(root, ec) ? " is a file, not a folder" : " does not exist") +
                "; give the folder that holds the images");
}

// path -> label from a regex over the file names under `root` (recursively, hidden files skipped).
void label_by_regex(const std::string& root, const std::string& pattern, std::vector<std::pair<std::string, std::string>>& out,
                    std::vector<SkippedFile>& ignored, std::string& unmatched_example) {
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw Error("--label-regex '" + pattern + "' is not a valid regular expression (" + e.what() +
                "); e.g. '^([a-z]+)\\.' takes 'cat' from cat.0.jpg");
  }
  if (re.mark_count() < 1)
    throw Error("--label-regex '" + pattern + "' has no capture group; put the class part in parentheses, e.g. "
                "'^([a-z]+)\\.' takes 'cat' from cat.0.jpg");
  std::vector<fs::path> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) throw Error("cannot read data folder " + root + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) {
      ignored.push_back({root, "could not list: " + ec.message()});
      break;
    }
    const fs::path& p = it->path();
    if (is_hidden(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      ignored.push_back({p.string(), "hidden file"});
      continue;
    }
    if (it->is_directory(ec)) continue;
    if (!has_image_extension(p.string())) {
      ignored.push_back({p.string(), "not an image file (extension)"});
      continue;
    }
    files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    const std::string name = p.filename().string();
    std::smatch m;
    if (std::regex_search(name, m, re) && m[1].matched && m[1].length() > 0) {
      out.push_back({p.string(), m[1].str()});
    } else {
      if (unmatched_example.empty()) unmatched_example = name;
      ignored.push_back({p.string(), "file name does not match --label-regex (no class)"});
    }
  }
}

// path -> label from a CSV's first two columns; relative paths are relative to `root`.
void label_by_csv(const std::string& root, const std::string& csv, std::vector<std::pair<std::string, std::string>>& out,
                  std::vector<SkippedFile>& ignored, std::string& unmatched_example) {
  std::ifstream f(csv, std::ios::binary);
  if (!f) throw Error("--labels file " + csv + " cannot be read; give a CSV with rows path,label");
  std::stringstream ss;
  ss << f.rdbuf();
  const auto rows = parse_csv(ss.str(), csv);
  std::set<std::string> seen;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    if (row.size() == 1 && row[0].empty()) continue;  // blank line
    const std::string where = csv + " line " + std::to_string(r + 1);
    if (row.size() < 2) throw Error(where + " has " + std::to_string(row.size()) + " field; expected path,label");
    fs::path p(row[0]);
    if (p.is_relative()) p = fs::path(root) / p;
    if (!is_file(p)) {
      // A first row naming no file is the header (path,label or any other names).
      if (r == 0) continue;
      if (unmatched_example.empty()) unmatched_example = p.string();
      ignored.push_back({p.string(), "listed in " + csv + " but missing"});
      continue;
    }
    if (row[1].empty()) {
      ignored.push_back({p.string(), "no label in " + csv});
      continue;
    }
    if (!has_image_extension(p.string())) {
      ignored.push_back({p.string(), "not an image file (extension)"});
      continue;
    }
    if (!seen.insert(p.lexically_normal().string()).second) {
      ignored.push_back({p.string(), "listed twice in " + csv + " (the first row counts)"});
      continue;
    }
    out.push_back({p.string(), row[1]});
  }
}

}  // namespace

std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& name) {
  // The project's one CSV reader (tlc/util.h), with the file named in its errors.
  try {
    return parse_csv(text);
  } catch (const Error& e) {
    throw Error(name + ": " + e.what());
  }
}

ImageFolder list_labelled_images(const std::string& root, const LabelSource& src, int min_classes) {
  if (!src.csv.empty() && !src.regex.empty()) throw Error("give --labels or --label-regex, not both");
  if (!src.active()) throw Error("no label source given (--labels or --label-regex)");
  check_root(root);
  ImageFolder out;
  out.root = root;
  std::vector<std::pair<std::string, std::string>> labelled;
  std::string unmatched;
  if (!src.regex.empty()) {
    label_by_regex(root, src.regex, labelled, out.ignored, unmatched);
    out.layout_note = "labels from file names (--label-regex " + src.regex + ")";
  } else {
    label_by_csv(root, src.csv, labelled, out.ignored, unmatched);
    out.layout_note = "labels from " + src.csv + " (paths relative to " + root + ")";
  }
  const size_t unlabelled = std::count_if(out.ignored.begin(), out.ignored.end(), [](const SkippedFile& s) {
    return s.reason.rfind("file name does not match", 0) == 0 || s.reason.rfind("listed in ", 0) == 0 ||
           s.reason.rfind("no label", 0) == 0;
  });
  if (unlabelled > 0)
    out.layout_note += "; " + std::to_string(unlabelled) + " file(s) got no label (listed in skipped_files.tsv)";
  std::map<std::string, std::vector<std::string>> by_class;  // sorted by class name
  for (auto& [path, label] : labelled) by_class[label].push_back(path);
  for (auto& [label, paths] : by_class) {
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) out.items.push_back({p, static_cast<int64_t>(out.classes.size())});
    out.classes.push_back(label);
  }
  if (static_cast<int>(out.classes.size()) < min_classes) {
    std::string found;
    for (size_t i = 0; i < out.classes.size(); ++i) found += (i ? ", " : "") + out.classes[i];
    const std::string how = src.regex.empty() ? src.csv : "--label-regex '" + src.regex + "'";
    throw Error(how + " gives " + std::to_string(out.classes.size()) + " class(es) in " + root + " (" +
                (found.empty() ? "none" : found) + "); a classifier needs at least " + std::to_string(min_classes) +
                (unmatched.empty() ? std::string() : "; e.g. " + unmatched +
                     (src.regex.empty() ? " is listed but missing" : " does not match")));
  }
  return out;
}

ImageFolder list_labelled_images_with_classes(const std::string& root, const LabelSource& src,
                                              const std::vector<std::string>& classes) {
  ImageFolder f = list_labelled_images(root, src, 1);
  std::vector<int64_t> remap(f.classes.size());
  for (size_t i = 0; i < f.classes.size(); ++i) {
    auto it = std::find(classes.begin(), classes.end(), f.classes[i]);
    if (it == classes.end())
      throw Error(root + " has images labelled '" + f.classes[i] + "', a class the training data does not have");
    remap[i] = it - classes.begin();
  }
  for (auto& item : f.items) item.label = remap[item.label];
  f.classes = classes;
  return f;
}

ImageFolder list_images(const std::string& root, const LabelSource& src) {
  return src.active() ? list_labelled_images(root, src) : list_image_folder(root);
}

ImageFolder list_images_with_classes(const std::string& root, const LabelSource& src,
                                     const std::vector<std::string>& classes) {
  return src.active() ? list_labelled_images_with_classes(root, src, classes)
                      : list_image_folder_with_classes(root, classes);
}

}  // namespace tlc
