#pragma once
// Which image formats tlc reads, and a sentence for the ones it does not (so that a folder of HEIC photos
// says so instead of "0 class folders with images").
#include <string>
#include <vector>

#include "tlc/dataset.h"

namespace tlc {

// "12 .heic files: HEIC is not supported; ..." for the image formats tlc cannot read among the files skipped
// for their extension (other skipped files, e.g. Thumbs.db or notes.txt, are not mentioned); empty if none.
std::string unsupported_formats_note(const std::vector<SkippedFile>& skipped);

}  // namespace tlc
