"""The feature cache on disk (cache_dir): the in-process cache's rows, shared by every process that fits with the
same cache_dir, e.g. GridSearchCV(n_jobs=2)'s worker processes.

Layout: cache_dir/tlc-python-features/<setting digest>-<id>.npz shards, each holding `keys` (one digest per
image, of the key the in-process cache uses: path, size and mtime, or an array row's bytes) and `rows` float32
[N,C]; no pickles (np.load(allow_pickle=False)). A shard never changes once renamed into place, so a process
loads each one once. A process that misses rows takes the setting's lock (fcntl.flock on <setting
digest>.lock), looks at the shards again, computes only what is still missing and writes those rows as a new
shard (temp file + rename), then lets go: while one process runs the backbone over some images, another that
needs them waits and then reads them, so each image is computed once across the processes. Past MAX_SHARDS
shards the writer merges them into one (under the lock, where every reader is too).
"""
import contextlib
import hashlib
import os
import tempfile
import time

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: no lock; processes may then compute the same rows twice (still correct)
    fcntl = None

SUBDIR = "tlc-python-features"


def digest(obj):
    return hashlib.blake2b(repr(obj).encode("utf-8"), digest_size=16).hexdigest()


MAX_SHARDS = 16
_loaded = {}  # shard path -> (digests, rows): shards are immutable, so each is read once per process


def _load(path):
    if path not in _loaded:
        try:
            with np.load(path, allow_pickle=False) as z:
                _loaded[path] = (z["keys"].tolist(), z["rows"])
        except (OSError, ValueError, KeyError):  # damaged (disk full, a foreign file): its rows are recomputed
            _loaded[path] = ([], None)
    return _loaded[path]


class DiskStore:
    """Rows of one setting and view (`key`: the in-process cache's setting tuple plus the view) under `root`.
    Call add() inside locked(), and get() there too when its answer decides what to compute; a get() outside
    it (tlc._features.undecoded_set's check) is safe, as shards never change once in place, but may miss rows
    another process is writing."""

    def __init__(self, root, key):
        self.dir = os.path.join(os.fspath(root), SUBDIR)
        os.makedirs(self.dir, exist_ok=True)
        self.name = digest(key)
        self.lock_path = os.path.join(self.dir, self.name + ".lock")

    @contextlib.contextmanager
    def locked(self):
        with open(self.lock_path, "a") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield self
            finally:
                if fcntl is not None:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _shards(self):
        prefix = self.name + "-"
        return sorted(os.path.join(self.dir, f) for f in os.listdir(self.dir)
                      if f.startswith(prefix) and f.endswith(".npz"))

    def get(self, keys):
        """{key: row (np.float32 [C])} for the keys the shards hold."""
        wanted = {digest(k): k for k in keys}
        out = {}
        for shard in self._shards():
            digests, rows = _load(shard)
            for i, d in enumerate(digests):
                k = wanted.get(d)
                if k is not None:
                    out[k] = rows[i]
        return out

    def add(self, keys, rows):
        """Writes the rows of `keys` as a new shard (after get() found them missing)."""
        new_keys = np.asarray([digest(k) for k in keys], dtype="U32")
        rows = np.asarray(rows, dtype=np.float32)
        old = self._shards()
        if len(old) + 1 > MAX_SHARDS:
            loaded = [_load(s) for s in old]
            new_keys = np.concatenate([np.asarray(d, dtype="U32") for d, r in loaded if r is not None] + [new_keys])
            rows = np.concatenate([r for d, r in loaded if r is not None] + [rows])
        self._write(new_keys, rows)
        if len(old) + 1 > MAX_SHARDS:
            for s in old:
                with contextlib.suppress(OSError):
                    os.unlink(s)
                _loaded.pop(s, None)

    def _write(self, keys, rows):
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, keys=keys, rows=rows)
            os.replace(tmp, os.path.join(self.dir, f"{self.name}-{time.time_ns():020d}-{os.getpid()}.npz"))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def __len__(self):
        return sum(len(_load(s)[0]) for s in self._shards())
