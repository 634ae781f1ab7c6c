#pragma once
// Labels that do not come from class sub-folders (Keras' flow_from_dataframe, fastai's from_name_re):
//   --labels FILE.csv     rows "path,label"; relative paths are relative to the data folder (DATA_DIR);
//   --label-regex REGEX   the first capture group of REGEX searched in each file's NAME is its class
//                         (Kaggle's train/cat.0.jpg: --label-regex '^([a-z]+)\.').
// The result is an ImageFolder like list_image_folder's, so the split, decode-skip and report rules are the
// folders' ones; files that get no label are listed in `ignored` with the reason.
#include <string>
#include <vector>

#include "tlc/dataset.h"

namespace tlc {

struct LabelSource {
  std::string csv;    // path,label CSV
  std::string regex;  // ECMAScript regular expression with at least one capture group
  bool active() const { return !csv.empty() || !regex.empty(); }
};

// Lists the images of `root` labelled by `src` (which must be active). Classes are sorted by name, items by
// class then path. Throws tlc::Error for an unreadable CSV, an invalid regex, both sources at once, or fewer
// than `min_classes` classes, naming an example of what did not match.
ImageFolder list_labelled_images(const std::string& root, const LabelSource& src, int min_classes = 2);

// As above, with the classes fixed (a validation or test folder labelled the same way as training).
ImageFolder list_labelled_images_with_classes(const std::string& root, const LabelSource& src,
                                              const std::vector<std::string>& classes);

// The one entry point for commands: class sub-folders (list_image_folder) when `src` is not active, else the
// labels above. The _with_classes form is for validation/test/evaluation folders.
ImageFolder list_images(const std::string& root, const LabelSource& src);
ImageFolder list_images_with_classes(const std::string& root, const LabelSource& src,
                                     const std::vector<std::string>& classes);

// tlc::parse_csv (tlc/util.h: RFC 4180, CRLF, a UTF-8 byte order mark) with the file `name` in its errors.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& name);

}  // namespace tlc
