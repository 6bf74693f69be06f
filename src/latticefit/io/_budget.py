"""Part of :mod:`io` (see its docstring): io_budget."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import (
    FileReadError,
    InvalidDataError,
)
from ._messages import _quiet_readers, _short_cause


def memory_budget_bytes() -> int:
    """Largest image (bytes as float32) latticefit agrees to analyse on this machine.

    The analyses hold up to ~10 float32 copies of the image at once, so the default is a tenth of the
    memory available now (``MemAvailable``); ``LATTICEFIT_MAX_IMAGE_BYTES`` overrides it.

    Examples
    --------
    >>> from latticefit.io import memory_budget_bytes
    >>> memory_budget_bytes() > 0
    True
    """
    env = os.environ.get("LATTICEFIT_MAX_IMAGE_BYTES")
    if env:
        try:
            return max(int(float(env)), 1)
        except ValueError:
            pass
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, AttributeError):
        avail = 8 << 30
    return max(int(avail // 10), 64 << 20)


def check_image_budget(shape, itemsize: int, src: str) -> None:
    """Refuse, before anything is allocated, data whose declared size exceeds :func:`memory_budget_bytes`.

    ``shape`` is the declared shape of the whole dataset (a stack included) and ``itemsize`` its bytes per
    value; both the data as stored and one float32 frame must fit.
    """
    n_all = int(np.prod([int(v) for v in shape], dtype=np.float64))
    n_frame = int(np.prod([int(v) for v in shape[-2:]], dtype=np.float64))
    budget = memory_budget_bytes()
    need = max(n_all * int(itemsize) // 4, n_frame * 4)
    if need > budget:
        dims = " x ".join(str(int(v)) for v in shape)
        raise InvalidDataError(
            f"declared data of {dims} values ({need / 2**30:.1f} GiB as float32) exceed the "
            f"memory budget of {budget / 2**30:.1f} GiB (set LATTICEFIT_MAX_IMAGE_BYTES "
            "to raise it)",
            src,
        )


def _check_unchunked_size(p: Path, src: str) -> None:
    import h5py

    sizes = []
    with h5py.File(p, "r") as f:
        f.visititems(
            lambda name, obj: (
                sizes.append((obj.shape, obj.dtype.itemsize))
                if isinstance(obj, h5py.Dataset) and obj.ndim >= 2
                else None
            )
        )
    for shape, itemsize in sizes:
        check_image_budget(shape, itemsize, src)


def _probe_pixels(s, src: str) -> None:
    """Read the data of ``s`` far enough to find truncation and corrupt blocks (``info`` reads no image else).

    Lazy data up to 256 MiB are read whole; larger data, their first and last frame.
    """
    data = s.data
    if not hasattr(data, "compute"):
        return  # already in memory: it was read whole
    try:
        with _quiet_readers():
            if data.nbytes <= 256 << 20:
                data.compute()
            else:
                data[(0,) * (data.ndim - 2)].compute()
                data[tuple(n - 1 for n in data.shape[:-2])].compute()
    except Exception as e:  # noqa: BLE001 - any reader failure means a damaged file
        raise FileReadError(f"cannot read the pixel data (truncated or corrupt?): {_short_cause(e)}", src) from None
