"""The feature cache on disk (cache_dir): the in-process cache's rows, shared by every process that fits with the
same cache_dir, e.g. GridSearchCV(n_jobs=2)'s worker processes.

Layout: cache_dir/tlc-python-features/<setting digest>-<view>.npz holding `keys` (one digest per image, of the
same key the in-process cache uses: path, size and mtime, or an array row's bytes) and `rows` float32 [N,C];
no pickles (np.load(allow_pickle=False)). A process that misses rows takes the setting's lock (fcntl.flock on
<setting digest>.lock), reads the file again, computes only what is still missing, appends it and writes the
file atomically (temp file + rename), then lets go: while one process runs the backbone over some images,
another that needs them waits and then reads them, so each image is computed once across the processes.
Readers without the lock see either the old or the new file, never half of one."""
import contextlib
import hashlib
import os
import tempfile

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: no lock; processes may then compute the same rows twice (still correct)
    fcntl = None

SUBDIR = "tlc-python-features"


def digest(obj):
    return hashlib.blake2b(repr(obj).encode("utf-8"), digest_size=16).hexdigest()


class DiskStore:
    """Rows of one setting and view (`key`: the in-process cache's setting tuple plus the view) under `root`."""

    def __init__(self, root, key):
        self.dir = os.path.join(os.fspath(root), SUBDIR)
        os.makedirs(self.dir, exist_ok=True)
        name = digest(key)
        self.path = os.path.join(self.dir, name + ".npz")
        self.lock_path = os.path.join(self.dir, name + ".lock")
        self._stamp = None
        self._index = {}
        self._rows = None

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

    def _refresh(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._index, self._rows = None, {}, None
            return
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if stamp == self._stamp:
            return
        try:
            with np.load(self.path, allow_pickle=False) as z:
                keys, rows = z["keys"], z["rows"]
        except (OSError, ValueError, KeyError):  # damaged (disk full, a foreign file): start it again
            keys, rows = np.zeros(0, dtype="U32"), None
        self._stamp, self._rows = stamp, rows
        self._index = {k: i for i, k in enumerate(keys.tolist())}

    def get(self, keys):
        """{key: row (np.float32 [C])} for the keys the file holds."""
        self._refresh()
        out = {}
        for k in keys:
            i = self._index.get(digest(k))
            if i is not None:
                out[k] = self._rows[i]
        return out

    def add(self, keys, rows):
        """Appends rows (call inside locked(), after get(), so nothing is written twice)."""
        self._refresh()
        new_keys = np.asarray([digest(k) for k in keys], dtype="U32")
        rows = np.asarray(rows, dtype=np.float32)
        if self._rows is not None and len(self._index):
            old_keys = np.empty(len(self._index), dtype="U32")
            for k, i in self._index.items():
                old_keys[i] = k
            new_keys = np.concatenate([old_keys, new_keys])
            rows = np.concatenate([self._rows, rows])
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, keys=new_keys, rows=rows)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._stamp = None

    def __len__(self):
        self._refresh()
        return len(self._index)
