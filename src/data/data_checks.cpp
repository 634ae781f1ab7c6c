#include "tlc/data_checks.h"

#include <algorithm>
#include <set>

#include "tlc/error.h"
#include "tlc/text.h"

namespace tlc {
namespace {

constexpr size_t kShown = 5;  // files named in an error; the rest are in skipped_files.tsv

std::string first_few(const std::vector<SkippedFile>& files) {
  std::string s;
  for (size_t i = 0; i < files.size() && i < kShown; ++i)
    s += (i ? "; " : "") + files[i].path + " (" + files[i].reason + ")";
  if (files.size() > kShown) s += "; and " + std::to_string(files.size() - kShown) + " more";
  return s;
}

}  // namespace

void check_training_data(std::initializer_list<const ImageFolder*> folders, const std::vector<ImageItem>& train_used,
                         const std::vector<SkippedFile>& broken, bool strict, const std::string& skipped_list) {
  if (strict && !broken.empty())
    throw Error(count_noun(static_cast<int64_t>(broken.size()), "file") + " could not be decoded: " + first_few(broken) +
                " (all listed in " + skipped_list + "); remove them, or drop --strict to skip them");
  const std::vector<std::string>& classes = (*folders.begin())->classes;
  std::vector<ImageItem> listed;
  for (const ImageFolder* f : folders) listed.insert(listed.end(), f->items.begin(), f->items.end());
  const auto used = count_per_class(train_used, static_cast<int64_t>(classes.size()));
  for (size_t c = 0; c < classes.size(); ++c) {
    if (used[c] > 0) continue;
    std::set<std::string> mine;
    for (const auto& it : listed)
      if (it.label == static_cast<int64_t>(c)) mine.insert(it.path);
    std::vector<SkippedFile> why;
    for (const auto& b : broken)
      if (mine.count(b.path)) why.push_back(b);
    std::string msg = "class '" + classes[c] + "' has no usable training images left: ";
    if (why.empty())
      msg += "none of its " + count_noun(static_cast<int64_t>(mine.size()), "image") + " went to the training split";
    else
      msg += count_noun(static_cast<int64_t>(why.size()), "file") + " of its " + std::to_string(mine.size()) +
             " could not be decoded: " + first_few(why);
    throw Error(msg + " (skipped files are listed in " + skipped_list +
                "); add decodable images to the class folder, or remove it");
  }
}

std::string dropped_class_notes(const std::vector<SkippedFile>& ignored) {
  std::string s;
  for (const auto& f : ignored)
    if (f.reason == kEmptyClassReason) s += "  class folder " + f.path + " has no images: dropped\n";
  return s;
}

}  // namespace tlc
