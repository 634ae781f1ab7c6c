#pragma once
// Run folders that work from any working directory: absolute paths, splits.csv as real CSV, and the
// clean-up of a folder a failed run created.
#include <string>
#include <vector>

namespace tlc {

// The absolute, lexically normal form of `p` (relative to the current directory); "" stays "".
std::string absolute_path(const std::string& p);

// A path recorded in a run folder: absolute paths as they are; relative ones (run folders written before
// tlc stored absolute paths) against `base`, the working directory recorded in config.json ("cwd"), or the
// current directory when `base` is empty.
std::string resolve_recorded_path(const std::string& p, const std::string& base);

// The working directory recorded in RUN/config.json ("cwd"); "" when the run folder does not record one.
std::string recorded_cwd(const std::string& run_dir);

// splits.csv: "split,label,path", one row per image, every field through csv_field (quoted when needed).
struct SplitRow {
  std::string split, label, path;
};
std::string splits_csv(const std::vector<SplitRow>& rows);
// Reads a splits.csv with a CSV parser (quotes, commas, line breaks and non-ASCII in fields); relative
// paths are resolved against `base` (see resolve_recorded_path). Throws tlc::Error naming the file and
// the line for a malformed row.
std::vector<SplitRow> read_splits(const std::string& path, const std::string& base);

// The files tlc writes into a run folder (train, finetune, evaluate): what `tlc train --overwrite` removes
// before the new run starts, so that the folder never mixes two runs (files of the user's own stay).
const std::vector<std::string>& run_folder_files();

// `s` quoted for a POSIX shell when it needs it (for commands printed as advice).
std::string shell_quote(const std::string& s);

// The run folder of a job that may fail, locked for the job: a folder that exists is locked when the guard is
// built, a new one when create() makes it (RUN/.lock, an flock held until the process ends, with the pid
// in it); a folder another job holds throws tlc::Error naming that job's pid (and nothing is removed).
// Built before the folder exists (create() makes it); when the job
// ends with an error (the guard is destroyed without keep()), a folder this run created is removed with
// everything in it except a skipped_files.tsv that lists files (the reasons for the failure), together
// with the parent folders it created that are left empty; unless it holds work: a checkpoint.pt (e.g. the
// epochs before a NaN loss) or a model.pt. A folder that existed before is never removed.
class RunFolderGuard {
 public:
  explicit RunFolderGuard(std::string dir);
  ~RunFolderGuard();
  // `lock_now`: take the lock at once when the folder exists (false: the guard of a rank that does not write).
  RunFolderGuard(std::string dir, bool lock_now);
  RunFolderGuard(const RunFolderGuard&) = delete;
  RunFolderGuard& operator=(const RunFolderGuard&) = delete;
  void create();
  void keep() { keep_ = true; }  // success, or an interruption that left a checkpoint
  bool existed() const { return existed_; }

 private:
  void lock();
  std::string dir_, topmost_new_;
  bool existed_ = false, keep_ = false;
  int lock_fd_ = -1;
};

}  // namespace tlc
