#include "tlc/run_folder.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tlc/error.h"
#include "tlc/util.h"

namespace fs = std::filesystem;

namespace tlc {

const std::vector<std::string>& run_folder_files() {
  static const std::vector<std::string> files = {
      "checkpoint.pt", "model.pt",          "config.json",   "history.csv",   "metrics.json",     "curves.png",
      "splits.csv",    "skipped_files.tsv", "finetune.json", "confusion.png", "misclassified.csv"};
  return files;
}

std::string absolute_path(const std::string& p) {
  if (p.empty()) return p;
  std::error_code ec;
  fs::path a = fs::absolute(fs::path(p), ec);
  if (ec) return p;
  std::string s = a.lexically_normal().string();
  if (s.size() > 1 && s.back() == '/') s.pop_back();  // "data/" and "data" name the same folder
  return s;
}

std::string resolve_recorded_path(const std::string& p, const std::string& base) {
  if (p.empty() || fs::path(p).is_absolute()) return p;
  if (base.empty()) return absolute_path(p);
  return (fs::path(base) / p).lexically_normal().string();
}

std::string recorded_cwd(const std::string& run_dir) {
  std::ifstream f(fs::path(run_dir) / "config.json");
  if (!f) return "";
  try {
    return nlohmann::json::parse(f).value("cwd", std::string());
  } catch (const std::exception&) {
    return "";
  }
}

std::string splits_csv(const std::vector<SplitRow>& rows) {
  std::ostringstream sp;
  sp << "split,label,path\n";
  for (const auto& r : rows) sp << csv_field(r.split) << "," << csv_field(r.label) << "," << csv_field(r.path) << "\n";
  return sp.str();
}

std::vector<SplitRow> read_splits(const std::string& path, const std::string& base) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::vector<std::vector<std::string>> rows;
  try {
    rows = parse_csv(ss.str());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  std::vector<SplitRow> out;
  for (size_t i = 1; i < rows.size(); ++i) {  // row 0: the header
    const auto& r = rows[i];
    if (r.size() == 1 && r[0].empty()) continue;
    if (r.size() != 3)
      throw Error(path + " row " + std::to_string(i + 1) + " has " + std::to_string(r.size()) +
                  " fields where split,label,path (3) were expected; write it again with `tlc train`");
    out.push_back({r[0], r[1], resolve_recorded_path(r[2], base)});
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

RunFolderGuard::RunFolderGuard(std::string dir) : RunFolderGuard(std::move(dir), true) {}

RunFolderGuard::RunFolderGuard(std::string dir, bool lock_now) : dir_(std::move(dir)) {
  std::error_code ec;
  existed_ = fs::exists(dir_, ec);
  if (existed_) {
    if (lock_now) lock();
    return;
  }
  // The topmost folder that does not exist yet: create() makes it and everything below.
  fs::path p = fs::path(absolute_path(dir_));
  topmost_new_ = p.string();
  for (fs::path q = p.parent_path(); !q.empty() && q != q.root_path() && !fs::exists(q, ec); q = q.parent_path())
    topmost_new_ = q.string();
}

void RunFolderGuard::create() {
  fs::create_directories(dir_);
  if (lock_fd_ < 0) lock();
}

void RunFolderGuard::lock() {
  const std::string path = (fs::path(dir_) / ".lock").string();
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) return;  // a read-only folder: the writes that follow say what is wrong
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(lock_fd_, buf, sizeof buf - 1, 0);
    const std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
    ::close(lock_fd_);
    lock_fd_ = -1;
    keep_ = true;  // the other job's folder: never removed by this one
    throw Error(dir_ + " is being written by another tlc job (pid " + pid.substr(0, pid.find('\n')) +
                "); wait for it to finish, or give another --out");
  }
  const std::string mine = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) == 0 && ::pwrite(lock_fd_, mine.data(), mine.size(), 0) < 0) {
    // the pid is only information for the message above
  }
}

RunFolderGuard::~RunFolderGuard() {
  if (lock_fd_ >= 0) {
    std::error_code ec;
    if (!keep_ && !existed_) fs::remove(fs::path(dir_) / ".lock", ec);
    ::close(lock_fd_);  // releases the lock
  }
  if (keep_ || existed_) return;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return;
  // Work worth keeping: a checkpoint (e.g. of the epochs before a NaN loss) or a model.
  if (fs::exists(fs::path(dir_) / "checkpoint.pt", ec) || fs::exists(fs::path(dir_) / "model.pt", ec)) return;
  for (auto it = fs::directory_iterator(dir_, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path p = it->path();
    if (p.filename() == "skipped_files.tsv") {
      std::ifstream f(p);
      std::string header, first;
      if (std::getline(f, header) && std::getline(f, first)) continue;  // lists files: keep it
    }
    fs::remove_all(p, ec);
  }
  // The run folder, then the parent folders it created, as long as they are empty.
  for (fs::path q = fs::path(absolute_path(dir_)); !q.empty(); q = q.parent_path()) {
    if (!fs::is_empty(q, ec) || ec || !fs::remove(q, ec)) break;
    if (q.string() == topmost_new_) break;
  }
}

}  // namespace tlc
