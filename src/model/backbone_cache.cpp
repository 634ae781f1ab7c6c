// Backbone::load_cached: a process-wide cache of loaded backbones, so that loading one file again (each fit of
// the Python estimator's model search) is a deep copy of its parameters instead of a TorchScript load and a
// probe (about 0.14 s for EfficientNet-Lite0, most of a cached-feature fit).
#include <sys/stat.h>

#include <filesystem>
#include <list>
#include <mutex>

#include "tlc/backbone.h"

namespace tlc {
namespace {

struct FileId {
  std::string path;  // absolute
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileId& o) const {
    return path == o.path && dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns;
  }
};

// Nothing when the file cannot be stat'ed: then load() runs and reports what is wrong with the path.
bool file_id(const std::string& path, FileId& id) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  id.path = ec ? path : abs.lexically_normal().string();
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.size = st.st_size;
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  return true;
}

struct Entry {
  FileId id;
  torch::jit::Module module;  // as load() left it: frozen, eval mode, on the CPU; never handed out itself
  BackboneInfo info;
};

std::mutex g_mu;
std::list<Entry> g_entries;  // most recently used first

}  // namespace

Backbone Backbone::load_cached(const std::string& path) {
  FileId id;
  if (!file_id(path, id)) return load(path);
  torch::jit::Module pristine;
  BackboneInfo info;
  bool hit = false;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (auto it = g_entries.begin(); it != g_entries.end(); ++it) {
      if (it->id == id) {
        g_entries.splice(g_entries.begin(), g_entries, it);
        pristine = it->module;
        info = it->info;
        hit = true;
        break;
      }
    }
  }
  if (!hit) {
    Backbone loaded = load(path);  // outside the lock: slow, and it may throw
    pristine = loaded.module_.deepcopy();
    info = loaded.info_;
    std::lock_guard<std::mutex> lock(g_mu);
    g_entries.remove_if([&](const Entry& e) { return e.id.path == id.path; });  // an older version of the file
    g_entries.push_front(Entry{id, pristine, info});
    while (g_entries.size() > kLoadCacheFiles) g_entries.pop_back();
    return loaded;
  }
  Backbone b;
  b.module_ = pristine.deepcopy();
  b.info_ = info;
  b.info_.path = path;
  b.parameter_tensors();  // filled now: later const readers only read it
  return b;
}

size_t Backbone::clear_load_cache() {
  std::lock_guard<std::mutex> lock(g_mu);
  const size_t n = g_entries.size();
  g_entries.clear();
  return n;
}

}  // namespace tlc
