"""Progress output of fit: epoch lines (verbose=1), tqdm bars when tqdm is installed, plain lines (verbose=2)."""
import math


def epoch_printer():
    tqdm = _tqdm()
    # tqdm.write keeps a bar that is on screen intact.
    out = tqdm.write if tqdm is not None else (lambda line: print(line, flush=True))

    def show(e):
        val = "" if math.isnan(e["val_loss"]) else f"  val_loss {e['val_loss']:.4f}  val_acc {e['val_acc']:.4f}"
        out(f"epoch {e['epoch']} ({e['phase']}): loss {e['loss']:.4f}  acc {e['acc']:.4f}{val}  "
              f"{e['images_per_second']:.0f} img/s")
    return show


def _tqdm():
    try:
        from tqdm.auto import tqdm
        return tqdm
    except ImportError:
        return None


class _Bars:
    """verbose=1 with tqdm installed: a transient tqdm bar per long loop (feature caching, each epoch's steps)."""

    def __init__(self, tqdm):
        self.tqdm, self.bar, self.label = tqdm, None, None

    def __call__(self, label, done, total):
        if self.bar is None or label != self.label or done < self.bar.n:
            self.close()
            self.bar, self.label = self.tqdm(total=total, desc=label, unit="img", leave=False), label
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        self.bar = self.label = None


class _Lines:
    """verbose=2 (or verbose=1 without tqdm: nothing): a plain line when a long loop starts and when it ends."""

    def __init__(self):
        self.last = {}

    def __call__(self, label, done, total):
        if done == total or self.last.get(label, -1) < 0:
            print(f"{label}: {done}/{total}", flush=True)
        self.last[label] = done

    def close(self):
        self.last.clear()


def progress_sink(verbose):
    """The progress sink for fit: None (verbose=0, or 1 without tqdm), tqdm bars (verbose=1), lines (verbose>=2)."""
    if not verbose:
        return None
    if verbose >= 2:
        return _Lines()
    tqdm = _tqdm()
    return _Bars(tqdm) if tqdm is not None else None
