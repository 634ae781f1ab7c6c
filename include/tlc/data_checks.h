#pragma once
// The checks that stop a run whose data cannot train, made once every split has been decoded (so that the
// counts are those of the whole folder) and after skipped_files.tsv is written (so that the list the error
// points to exists).
#include <initializer_list>
#include <string>
#include <vector>

#include "tlc/dataset.h"

namespace tlc {

// Throws tlc::Error when `strict` and any file was undecodable (with the total count and the first few),
// or when a class has no decodable training image left (with the reasons for that class's files).
// `folders`: the run's listed folders (the first names the classes; --val-dir/--test-dir folders follow),
// `train_used`: the decodable training items, `broken`: the undecodable files with reasons,
// `skipped_list`: where all skipped files are listed.
void check_training_data(std::initializer_list<const ImageFolder*> folders, const std::vector<ImageItem>& train_used,
                         const std::vector<SkippedFile>& broken, bool strict, const std::string& skipped_list);

// "  class folder X has no images: dropped" for each empty class folder that listing dropped.
std::string dropped_class_notes(const std::vector<SkippedFile>& ignored);

}  // namespace tlc
