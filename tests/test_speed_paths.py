"""The fast paths of issue #15 give the results of the slow ones: eager reads, figure saving, pruning."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from latticefit import io
from latticefit.errors import FileReadError
from latticefit.io import _formats


def _hspy(tmp_path, data):
    import hyperspy.api as hs

    s = hs.signals.Signal2D(data)
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.units = 0.05, "nm"
    p = tmp_path / "img.hspy"
    s.save(p, overwrite=True)
    return p


def test_small_hdf5_is_read_whole_and_equals_the_lazy_read(tmp_path, monkeypatch):
    data = np.random.default_rng(0).normal(100, 5, (96, 128)).astype(np.float32)
    p = _hspy(tmp_path, data)
    assert _formats._small_enough_to_read_whole(p, ".hspy")
    eager = io.load(p)
    assert isinstance(eager.data, np.ndarray)
    monkeypatch.setattr(_formats, "READ_WHOLE_BYTES", 0)
    assert not _formats._small_enough_to_read_whole(p, ".hspy")
    lazy = io.load(p)
    np.testing.assert_array_equal(eager.data, lazy.data)
    assert eager.pixel_size_nm == lazy.pixel_size_nm == (0.05, 0.05)
    assert eager.file_format == lazy.file_format


def test_declared_hdf5_size_decides_not_the_compressed_file_size(tmp_path, monkeypatch):
    p = _hspy(tmp_path, np.zeros((256, 256), np.float32))  # compresses to a few kB
    monkeypatch.setattr(_formats, "READ_WHOLE_BYTES", 256 * 256 * 4 - 1)
    assert not _formats._small_enough_to_read_whole(p, ".hspy")
    monkeypatch.setattr(_formats, "READ_WHOLE_BYTES", 256 * 256 * 4)
    assert _formats._small_enough_to_read_whole(p, ".hspy")


def test_a_damaged_small_file_still_says_truncated(tmp_path):
    p = _hspy(tmp_path, np.random.default_rng(1).normal(size=(128, 128)).astype(np.float32))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileReadError, match="truncated or corrupt"):
        io.load(p)


def test_figure_formats_native_pdf_images_and_restored_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latticefit._plotstyle import save_figure

    fig, (a, b) = plt.subplots(1, 2, figsize=(3, 1.5), layout="constrained")
    big = np.random.default_rng(2).random((900, 900))  # shrunk at 300 dpi: embedded at its own pixels
    small = np.random.default_rng(3).random((20, 20))  # enlarged: resampled as before
    a.imshow(big, interpolation="antialiased")
    b.imshow(small, interpolation="antialiased")
    engine = fig.get_layout_engine()
    written = save_figure(fig, tmp_path / "f.pdf")
    assert [w.name for w in written] == ["f.pdf", "f.png"]
    sizes = {(int(w), int(h)) for w, h in re.findall(rb"/Width (\d+) /Height (\d+)", written[0].read_bytes())}
    assert (900, 900) in sizes
    assert (20, 20) not in sizes
    assert [im.get_interpolation() for ax in fig.axes for im in ax.get_images()] == ["antialiased"] * 2
    assert fig.get_layout_engine() is engine
    from PIL import Image

    with Image.open(written[1]) as im:
        assert im.size == (900, 450)
    plt.close(fig)


def _nested_reference(x, y, r, strength, overlap):
    """The pruning loop over every pair (no pre-filter): what _nested computed before."""
    n = len(x)
    out = np.zeros(n, bool)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    for i, j in sorted(pairs, key=lambda p: -max(strength[p[0]], strength[p[1]])):
        if out[i] or out[j]:
            continue
        strong, weak = (i, j) if strength[i] >= strength[j] else (j, i)
        if math.hypot(x[i] - x[j], y[i] - y[j]) < r[strong] + overlap * r[weak]:
            out[weak] = True
    return out


@pytest.mark.parametrize("seed", range(4))
def test_nested_pruning_equals_the_all_pairs_loop(seed):
    from latticefit.particles._pipeline import PRUNE_OVERLAP, _nested

    rng = np.random.default_rng(seed)
    n = 150
    x, y = rng.uniform(0, 200, n), rng.uniform(0, 200, n)
    r = rng.uniform(1, 6, n)
    r[0] = 60.0  # one giant detection: the query radius covers the whole field
    strength = rng.random(n)
    got = _nested(x, y, r, strength)
    want = _nested_reference(x, y, r, strength, PRUNE_OVERLAP)
    np.testing.assert_array_equal(got, want)
    assert want.any()
