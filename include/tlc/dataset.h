#pragma once
// Folder listing and splits: the first stage of the pipeline. A dataset folder holds one sub-folder per
// class; classes are sorted by name, files by path, so the same folder always lists the same way.
#include <cstdint>
#include <string>
#include <vector>

namespace tlc {

struct ImageItem {
  std::string path;
  int64_t label = 0;
};

struct SkippedFile {
  std::string path;
  std::string reason;
};

struct ImageFolder {
  std::string root;                  // the folder the classes were read from (after layout resolution)
  std::vector<std::string> classes;  // sorted by folder name; valid UTF-8 (escape_name of the folder name)
  std::vector<std::string> class_folders;  // the class folders' names exactly as on disk (bytes)
  std::vector<ImageItem> items;      // sorted by class, then path
  std::vector<SkippedFile> ignored;  // hidden files, stray files at the root, files without an image extension
  std::string layout_note;           // e.g. "PetImages layout (cats_vs_dogs)" when a named layout was found
};

// True for .jpg .jpeg .png .bmp .webp .tif .tiff .gif (any case).
bool has_image_extension(const std::string& path);

// THE rule for which files under a folder are images to use, shared by every command (train's class
// folders, predict's folders): searched recursively, symbolic links to folders not followed, hidden files
// and folders (a name starting with '.', e.g. macOS's ._IMG.jpg) skipped, image extensions only. Returns
// the files sorted by path; what was passed over goes to `ignored` (when given) with the reason.
std::vector<std::string> list_image_files(const std::string& dir, std::vector<SkippedFile>* ignored = nullptr);

// The reason recorded in ImageFolder::ignored for a class folder without images.
constexpr const char* kEmptyClassReason = "empty class folder (no images): class dropped";

// Named layouts as they come out of their archives: a folder holding PetImages/ (cats_vs_dogs) or
// flower_photos/ (tf_flowers) resolves to that sub-folder. Returns `root` itself otherwise.
std::string resolve_layout(const std::string& root, std::string* note = nullptr);

// Lists `root` (after resolve_layout). Throws tlc::Error for a missing folder, a folder without class
// sub-folders, fewer than `min_classes` classes holding images, or a folder one level too high (its
// sub-folders hold only class-like sub-folders: train/ and test/ each with cats/ and dogs/; the error names
// the folder to give). Empty class folders are dropped and
// reported in `ignored`.
ImageFolder list_image_folder(const std::string& root, int min_classes = 2);

// Lists a folder whose class sub-folders must be exactly `classes` (used for --val-dir/--test-dir).
ImageFolder list_image_folder_with_classes(const std::string& root, const std::vector<std::string>& classes);

struct Split {
  std::vector<ImageItem> train, val, test;
};

// Stratified, seeded, deterministic split: within each class the files (sorted by path) are shuffled with a
// platform-independent generator seeded by `seed` and the class index, then the first round(n*test) go to
// test, the next round(n*val) to val, the rest to train. Throws tlc::Error (with the numbers) when a class
// is too small for the asked fractions.
Split split_stratified(const std::vector<ImageItem>& items, int64_t num_classes, double val_fraction,
                       double test_fraction, uint64_t seed,
                       const std::vector<std::string>& class_names = {});

std::vector<int64_t> count_per_class(const std::vector<ImageItem>& items, int64_t num_classes);

}  // namespace tlc
