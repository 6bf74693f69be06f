"""Quiet third-party readers and one-line causes of their failures (used by every reader)."""

from __future__ import annotations

import contextlib
import logging
import warnings

_QUIET_LOGGERS = ("hyperspy", "rsciio", "rosettasciio", "tifffile", "imageio", "h5py")


@contextlib.contextmanager
def _quiet_readers():
    """Silence third-party log records and warnings while a reader runs."""
    saved = {}
    for name in _QUIET_LOGGERS:
        lg = logging.getLogger(name)
        saved[name] = lg.level
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _short_cause(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    name = type(exc).__name__
    if name == "error":  # struct.error, zlib.error ...
        name = f"{type(exc).__module__}.error"
    return f"{name}: {text}" if text else name
