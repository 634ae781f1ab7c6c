"""Ctrl-C during fit: a KeyboardInterrupt promptly, and the estimator (and tlc) usable afterwards."""
import os
import signal
import threading
import time

import pytest

import tlc
from conftest import make


def test_sigint_during_fit_raises_keyboard_interrupt(small_folder):
    folder = tlc.ImageFolder(small_folder)
    clf = make(epochs=100000, reuse_features=False)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        clf.fit(folder)
    assert time.monotonic() - t0 < 30
    timer.join()
    # Usable again: the flag was cleared, Python's own handler is back.
    assert not tlc._core.interrupt_requested()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    clf.set_params(epochs=1).fit(folder)
    assert len(clf.history_) == 1
