"""Start-up (#15): a command imports only what it uses, and the light readers answer as hyperspy does."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

HEAVY = ("numba", "scipy.fft", "scipy.ndimage", "pandas", "matplotlib", "dask", "hyperspy.signal", "traits.api")


def _modules_after(argv: list[str]) -> dict:
    """Which of HEAVY a fresh ``latticefit`` process has imported after running ``argv`` (and its exit code)."""
    code = (
        "import sys, json; from latticefit.cli import main; rc = main(sys.argv[1:]); "
        f"print(json.dumps({{'rc': rc, **{{m: m in sys.modules for m in {HEAVY!r}}}}}))"
    )
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True).stdout
    import json

    return json.loads(out.strip().splitlines()[-1])


def _plain_hspy(path, data=None, **metadata):
    import hyperspy.api as hs

    s = hs.signals.Signal2D(np.random.default_rng(0).random((48, 64)).astype(np.float32) if data is None else data)
    for a in s.axes_manager.signal_axes:
        a.scale, a.units = 0.05, "nm"
    s.metadata.General.title = "HAADF"
    s.metadata.add_dictionary(
        {"Acquisition_instrument": {"TEM": {"beam_energy": 300.0, "acquisition_mode": "STEM"}}, **metadata}
    )
    s.original_metadata.add_dictionary({"Instrument": {"Name": "Titan", "HT": 300.0, "lst": [1, 2]}})
    s.save(path, overwrite=True)
    return s


def test_info_on_hspy_and_imagej_tiff_imports_no_analysis_stack(tmp_path):
    import tifffile

    hspy = tmp_path / "a.hspy"
    _plain_hspy(hspy)
    tif = tmp_path / "b.tif"
    tifffile.imwrite(tif, np.ones((32, 32), np.float32), imagej=True, resolution=(50, 50), metadata={"unit": "nm"})
    for f in (hspy, tif):
        mods = _modules_after(["info", str(f), "--json"])
        assert mods.pop("rc") == 0
        assert not any(mods.values()), (f.name, mods)


def test_help_does_not_import_the_crystal_library():
    code = "import sys; from latticefit.cli import build_parser; build_parser(); print('latticefit.crystal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False"]


def test_interop_imports_its_submodules_on_first_use():
    code = (
        "import sys; import latticefit.interop as i; a = 'latticefit.spectrum' in sys.modules; "
        "from latticefit.interop import provenance; b = 'latticefit.spectrum' in sys.modules; "
        "from latticefit.interop import *; print(a, b, all(callable(getattr(i, n)) for n in i.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]
    import latticefit.interop as interop

    with pytest.raises(AttributeError):
        interop.no_such_name  # noqa: B018


def _same_signal(plain, ref):
    assert plain.data.dtype == ref.data.dtype and np.array_equal(plain.data, ref.data, equal_nan=True)
    pa, ra = plain.axes_manager, ref.axes_manager
    assert (pa.signal_dimension, pa.navigation_dimension) == (ra.signal_dimension, ra.navigation_dimension)
    for a, b in zip(pa.signal_axes, ra.signal_axes):
        assert (a.scale, a.offset) == (b.scale, b.offset)
        assert (a.units or "") == ("" if str(b.units) == "<undefined>" else b.units)
    for path in (
        "General.title",
        "Acquisition_instrument.TEM.beam_energy",
        "Acquisition_instrument.TEM.acquisition_mode",
        "Acquisition_instrument.SEM",
    ):
        assert plain.metadata.get_item(path) == ref.metadata.get_item(path)
        assert plain.metadata.has_item(path) == ref.metadata.has_item(path)
    assert plain.original_metadata.get_item("fei_metadata") == ref.original_metadata.get_item("fei_metadata")
    assert repr(plain.original_metadata.as_dictionary()) == repr(ref.original_metadata.as_dictionary())


def test_plain_hspy_reader_answers_as_hyperspy(tmp_path):
    import hyperspy.api as hs

    from latticefit.io._plainsignal import read_hspy_plain

    for name, data in [
        ("img", None),
        ("stack", np.random.default_rng(1).random((3, 16, 24)).astype(np.float32)),
        ("u16", np.arange(32 * 40, dtype=np.uint16).reshape(32, 40)),
    ]:
        f = tmp_path / f"{name}.hspy"
        _plain_hspy(f, data)
        plain = read_hspy_plain(f)
        assert plain is not None and len(plain) == 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _same_signal(plain[0], hs.load(f, lazy=False))


def test_plain_hspy_reader_leaves_special_files_to_hyperspy(tmp_path):
    import hyperspy.api as hs

    from latticefit.io._plainsignal import read_hspy_plain

    _plain_hspy(tmp_path / "eels.hspy", Signal={"signal_type": "EELS"})
    s = _plain_hspy(tmp_path / "nonuniform.hspy")
    s.axes_manager.signal_axes[0].convert_to_non_uniform_axis()
    s.save(tmp_path / "nonuniform.hspy", overwrite=True)
    s = _plain_hspy(tmp_path / "stored.hspy")
    s.original_metadata.add_dictionary({"stored": hs.signals.Signal1D(np.arange(4.0))})
    s.save(tmp_path / "stored.hspy", overwrite=True)
    s = _plain_hspy(tmp_path / "fei.hspy")
    s.original_metadata.add_dictionary({"fei_metadata": {"PrivateFei": {"DatabarHeight": 8}}})
    s.save(tmp_path / "fei.hspy", overwrite=True)
    s = _plain_hspy(tmp_path / "spaced.hspy")
    s.original_metadata.add_dictionary({"a key": 1})
    s.save(tmp_path / "spaced.hspy", overwrite=True)
    hs.signals.Signal1D(np.arange(10.0)).save(tmp_path / "spectrum.hspy")
    (tmp_path / "bad.hspy").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    for name in ("eels", "nonuniform", "stored", "fei", "spaced", "spectrum", "bad"):
        assert read_hspy_plain(tmp_path / f"{name}.hspy") is None, name
    _plain_hspy(tmp_path / "glob[1].hspy")
    assert read_hspy_plain(tmp_path / "glob[1].hspy") is None


def test_plain_signal_answers_as_a_hyperspy_signal2d():
    import hyperspy.api as hs

    from latticefit.io._plainsignal import plain_signal

    rng = np.random.default_rng(2)
    for data in (rng.random((20, 30)), rng.random((2, 20, 30)).astype(np.float32), np.zeros((2, 2, 8, 8))):
        ref = hs.signals.Signal2D(data)
        ax, ay = ref.axes_manager.signal_axes
        ax.scale, ay.scale = 0.2, 0.3
        ax.units = ay.units = "nm"
        ref.metadata.General.title = ""
        ref.original_metadata.add_dictionary({"ImageJ": {"unit": "nm", "spacing": 1.5}})
        _same_signal(
            plain_signal(data, scale=(0.2, 0.3), units="nm", original={"ImageJ": {"unit": "nm", "spacing": 1.5}}), ref
        )
    with pytest.raises(ValueError):
        plain_signal(np.zeros(5))  # as hs.signals.Signal2D does
