#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tlc {

// Writes `content` to `path` through a temporary file in the same folder, fsync and rename, so a reader (or
// a crash) sees either the old file or the new one, never half of one.
void write_file_atomic(const std::string& path, const std::string& content);

// Calls `save_to(tmp_path)` and then renames tmp_path over `path` after an fsync; removes the temp file if
// save_to throws. Used for files written by other libraries (TorchScript's save).
void save_atomic(const std::string& path, const std::function<void(const std::string&)>& save_to);

// Number of worker threads to use when the user asked for `requested` (0 = all cores).
int resolve_threads(int requested);

// Runs fn(i) for i in [0, n) on `threads` threads (dynamic scheduling; exceptions are rethrown).
void parallel_for(std::size_t n, int threads, const std::function<void(std::size_t)>& fn);

// Deterministic 64-bit generator (splitmix64): the same sequence on every platform and standard library,
// which std::shuffle with std::uniform_int_distribution does not promise.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n)
 private:
  uint64_t state_;
};

std::string now_iso8601();

// One CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);

// Parses CSV text (RFC 4180, as csv_field writes it and as Python's csv module reads it): quoted fields with
// doubled quotes, commas and line breaks inside quotes, \n or \r\n line ends, a UTF-8 byte-order mark at the
// start skipped. Returns the rows' fields; throws tlc::Error for a quote left open.
std::vector<std::vector<std::string>> parse_csv(const std::string& text);

// 64-bit FNV-1a, for cache keys and data fingerprints (not for security).
struct Hasher {
  uint64_t h = 1469598103934665603ULL;
  void add(const void* data, size_t n) {
    auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
  void add(int64_t v) { add(&v, sizeof v); }
};

}  // namespace tlc
