"""Hardening (issue 17): a batch never loses the other files, inputs that lie about their calibration,
output cells that a spreadsheet would execute, workers that outlive a killed batch."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latticefit.batch import AnalysisOutcome
from latticefit.batch import _run as batch
from latticefit.errors import CalibrationWarning, LatticefitError
from latticefit.io import load
from latticefit.serialize import csv_safe_cell, printable_text
from latticefit.synth import _core as synth

BAD_NAME = b"x\xff.tif".decode("utf-8", "surrogateescape")  # what os.listdir gives for a non-UTF-8 name


def mean_lattice(mg, settings):
    """A cheap stand-in analysis (the machinery is under test, not the lattice engine)."""
    return AnalysisOutcome(
        summary={"n_spots": 1, "d_angstrom": float(mg.data.mean())},
        result={},
        spots=pd.DataFrame({"d_angstrom": [float(mg.data.mean())]}),
    )


def write_tif(path, mg, resolution=None):
    import tifffile

    r = 1.0 / mg.pixel_size_nm[1] if resolution is None else resolution
    tifffile.imwrite(path, mg.data, imagej=True, resolution=(r, r), metadata={"unit": "nm"})
    return path


@pytest.fixture
def hostile_folder(tmp_path):
    """Two good images, one with a non-UTF-8 name, a dangling and two looping symbolic links."""
    d = tmp_path / "in"
    d.mkdir()
    mg = synth.perovskite_111(shape=(96, 96), noise_sigma=0.1, seed=1)[0]
    for name in ("a.tif", "b.tif"):
        write_tif(d / name, mg)
    write_tif(os.path.join(os.fsencode(d), os.fsencode(BAD_NAME)).decode("utf-8", "surrogateescape"), mg)
    (d / "dangling.tif").symlink_to(d / "nowhere.tif")
    (d / "loop1.tif").symlink_to(d / "loop2.tif")
    (d / "loop2.tif").symlink_to(d / "loop1.tif")
    return d


def run_batch(folder, out, **kw):
    return batch.run(folder, out, mode="lattice", jobs=1, analyzers={"lattice": mean_lattice}, progress=False, **kw)


def test_non_utf8_name_and_symlink_loops_keep_every_good_file(hostile_folder, tmp_path):
    out = tmp_path / "out"
    summary = run_batch(hostile_folder, out)
    ok = sorted(summary.loc[summary["status"] == "ok", "file"])
    assert ok == ["a.tif", "b.tif", "x\\xff.tif"]  # the bad byte shown escaped, the file analysed
    errors = pd.read_csv(out / "errors.csv")
    assert sorted(errors["file"]) == ["dangling.tif", "loop1.tif", "loop2.tif"]
    assert errors["error"].str.contains("symbolic link").all()
    assert (out / "x\\xff.tif.lattice.json").is_file()
    again = run_batch(hostile_folder, out, resume=True)  # --resume reads the records back
    pd.testing.assert_frame_equal(
        again.drop(columns=batch.TIMING_COLUMNS, errors="ignore"),
        summary.drop(columns=batch.TIMING_COLUMNS, errors="ignore"),
    )


def test_second_batch_on_the_same_out_is_refused_naming_the_holder(hostile_folder, tmp_path):
    out = tmp_path / "out"
    (out / ".latticefit").mkdir(parents=True)
    with batch.exclusive_lock(out / ".latticefit" / "lock"):
        with pytest.raises(LatticefitError, match=f"pid {os.getpid()}"):
            run_batch(hostile_folder, out)
    assert len(run_batch(hostile_folder, out)) == 6  # the lock went with its holder


def test_unwritable_out_is_one_error_naming_the_folder(hostile_folder, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(LatticefitError) as e:
        run_batch(hostile_folder, not_a_folder / "out")
    assert str(not_a_folder) in str(e.value)


def test_formula_cells_are_quoted_in_the_csv(tmp_path):
    mg = synth.perovskite_111(shape=(96, 96), noise_sigma=0.1, seed=2)[0]
    d = tmp_path / "in"
    d.mkdir()
    write_tif(d / "=cmd.tif", mg)
    run_batch(d, tmp_path / "out")
    text = (tmp_path / "out" / "summary.csv").read_text()
    assert "\n'=cmd.tif," in text and "\n=cmd" not in text


@given(st.text())
def test_csv_safe_cell_never_starts_a_formula(s):
    v = csv_safe_cell(s)
    v.encode("utf-8")  # always writable
    if v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        float(v)  # only numbers may keep a sign in front


@given(st.binary(max_size=12))
def test_printable_text_is_valid_and_lossless_for_utf8(raw):
    s = raw.decode("utf-8", "surrogateescape")
    out = printable_text(s)
    out.encode("utf-8")
    try:
        assert out == raw.decode("utf-8")
    except UnicodeDecodeError:
        assert "\\x" in out


def test_imagej_resolution_zero_is_uncalibrated_with_a_warning(tmp_path):
    mg = synth.perovskite_111(shape=(64, 64), noise_sigma=0.1, seed=3)[0]
    p = write_tif(tmp_path / "zero_res.tif", mg, resolution=0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = load(p)
    assert out.pixel_size_nm is None
    assert any(issubclass(x.category, CalibrationWarning) and "zero_res.tif" in str(x.message) for x in w)


def test_zero_or_nonfinite_axis_scale_is_not_a_calibration():
    import hyperspy.api as hs

    from latticefit.micrograph import axes_pixel_size_nm

    for bad in (0.0, float("nan"), float("inf")):
        s = hs.signals.Signal2D(np.zeros((8, 8), np.float32))
        for ax in s.axes_manager.signal_axes:
            ax.scale, ax.units = bad, "nm"
        with pytest.warns(CalibrationWarning, match="not usable"):
            assert axes_pixel_size_nm(s.axes_manager.signal_axes, source="f.dm4") is None


def test_pool_worker_exits_when_the_batch_process_dies():
    """The watcher a batch worker runs: once the batch pid is gone, the worker ends within ~1 s."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    code = (
        "import sys, time; from latticefit.batch._exec import _exit_with_parent; "
        f"_exit_with_parent({parent.pid}, poll_s=0.1); time.sleep(60); sys.exit(5)"
    )
    worker = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.5)
        assert worker.poll() is None  # alive while the batch is
        parent.kill()
        parent.wait()
        assert worker.wait(timeout=20) == 0  # exited by the watcher, not by the sleep
    finally:
        for p in (parent, worker):
            if p.poll() is None:
                p.kill()


# ----------------------------------------------------------------------------- damaged and oversized files
def _hspy_dataset(path):
    import h5py

    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.ndim == 2 else None)
    return names[0]


@pytest.fixture
def hspy_file(tmp_path):
    import hyperspy.api as hs

    s = hs.signals.Signal2D(np.random.default_rng(0).random((256, 256)).astype(np.float32))
    p = tmp_path / "ok.hspy"
    s.save(p, chunks=(64, 64))
    return p


def test_corrupt_chunks_and_truncation_are_found_by_info(hspy_file, realdata, tmp_path):
    import h5py

    from latticefit.errors import FileReadError
    from latticefit.io import inspect

    with h5py.File(hspy_file, "r") as f:
        ds = f[_hspy_dataset(hspy_file)]
        offsets = [ds.id.get_chunk_info(i).byte_offset for i in range(3, 6)]
    with open(hspy_file, "r+b") as fh:
        for o in offsets:
            fh.seek(o)
            fh.write(b"\xff" * 2000)
    with pytest.raises(FileReadError, match="truncated or corrupt"):
        inspect(hspy_file)
    mrc = (realdata / "loaders" / "HAADFscan.mrc").read_bytes()
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(mrc[: len(mrc) // 100])
    with pytest.raises(FileReadError, match="truncated or corrupt"):
        inspect(cut)


def test_unchunked_hspy_loads(hspy_file):
    import h5py

    name = _hspy_dataset(hspy_file)
    with h5py.File(hspy_file, "r+") as f:
        data, attrs = f[name][()], dict(f[name].attrs)
        del f[name]
        new = f.create_dataset(name, data=data)  # contiguous, as h5py and other writers make it
        for k, v in attrs.items():
            new.attrs[k] = v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        mg = load(hspy_file)
    np.testing.assert_array_equal(mg.data, data)


def test_declared_size_beyond_the_budget_is_refused_before_reading(hspy_file, monkeypatch):
    import h5py

    from latticefit.errors import InvalidDataError
    from latticefit.io import inspect

    name = _hspy_dataset(hspy_file)
    with h5py.File(hspy_file, "r+") as f:
        attrs = dict(f[name].attrs)
        del f[name]
        new = f.create_dataset(name, shape=(60000, 60000), dtype="f4", chunks=(1000, 1000))  # sparse: 0 bytes
        for k, v in attrs.items():
            new.attrs[k] = v
    assert hspy_file.stat().st_size < 1 << 20
    monkeypatch.setenv("LATTICEFIT_MAX_IMAGE_BYTES", str(1 << 30))
    for fn in (load, inspect):
        with pytest.raises(InvalidDataError, match="exceed the memory budget of 1.0 GiB"):
            fn(hspy_file)


# ----------------------------------------------------------------------------- CIF files that would explode
BIG_CELL_CIF = """data_big
_cell_length_a 1000
_cell_length_b 1000
_cell_length_c 1000
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Pb1 Pb 0 0 0
"""


def test_huge_cell_is_refused_before_the_reflection_list_is_built(tmp_path):
    from latticefit.crystal import load_cif, reflections, zone_axis_reflections
    from latticefit.errors import AnalysisError

    p = tmp_path / "big.cif"
    p.write_text(BIG_CELL_CIF)
    phase = load_cif(p)
    with pytest.raises(AnalysisError, match="beyond what can be indexed") as e:
        zone_axis_reflections(phase, (0, 0, 1), d_min_angstrom=1.0)
    assert "big.cif" in str(e.value)
    assert len(reflections(phase, d_min_angstrom=200.0)) > 0  # a large cell is fine at a coarse d-range


def test_oversized_cif_file_is_not_parsed(tmp_path, monkeypatch):
    from latticefit.crystal import _structure as crystal
    from latticefit.errors import FileReadError

    p = tmp_path / "huge.cif"
    p.write_text(BIG_CELL_CIF + "".join(f"Pb{i} Pb 0.{i % 97:02d} 0.5 0.5\n" for i in range(2000)))
    monkeypatch.setattr(crystal, "MAX_CIF_BYTES", 10_000)
    with pytest.raises(FileReadError, match="far larger than a crystal structure"):
        crystal.load_cif(p)


# ----------------------------------------------------------------------------- numerics independent of units
@pytest.mark.parametrize(
    "transform",
    [
        lambda x: x * 1e18,
        lambda x: x * 1e-30,
        lambda x: x * 1e30,
        lambda x: x + 1e9,
        lambda x: (x * 1e-30).astype(np.float32),
    ],
    ids=["x1e18", "x1e-30", "x1e30", "offset1e9", "float32x1e-30"],
)
def test_lattice_is_the_same_in_any_intensity_unit(transform):
    from latticefit.lattice import measure_lattice

    mg = synth.perovskite_111(shape=(256, 256), noise_sigma=0.1, seed=0)[0]
    ref = measure_lattice(mg.data.astype(np.float64), pixel_size=mg.pixel_size_nm)
    got = measure_lattice(transform(mg.data.astype(np.float64)), pixel_size=mg.pixel_size_nm)
    assert len(got) == len(ref) > 0
    np.testing.assert_allclose(got.spots["d_angstrom"], ref.spots["d_angstrom"], rtol=1e-4)


@pytest.mark.parametrize("factor", [1e-30, 1e30])
def test_particle_sizes_are_the_same_in_any_intensity_unit(factor):
    from latticefit.particles import find_particles

    mg = synth.haadf_dots((192, 192), pixel_size_nm=0.4, diameter_nm=5.0, n_particles=6, n_touching_pairs=0, seed=4)[0]
    ref = find_particles(mg.data.astype(np.float64), pixel_size=mg.pixel_size_nm).table
    got = find_particles(mg.data.astype(np.float64) * factor, pixel_size=mg.pixel_size_nm).table
    assert len(got) == len(ref) > 0
    np.testing.assert_allclose(np.sort(got["diameter_nm"]), np.sort(ref["diameter_nm"]), rtol=0.01)


def test_implausible_pixel_sizes_are_uncalibrated_from_files_and_errors_in_the_api(tmp_path):
    from latticefit.errors import CalibrationError
    from latticefit.micrograph import Micrograph

    mg = synth.perovskite_111(shape=(64, 64), noise_sigma=0.1, seed=5)[0]
    p = write_tif(tmp_path / "absurd.tif", mg, resolution=(2**32 - 1, 1))  # 2.3e-10 nm/px
    with pytest.warns(CalibrationWarning, match="outside any microscope's range"):
        assert load(p).pixel_size_nm is None
    with pytest.raises(CalibrationError, match="outside any microscope's range"):
        Micrograph(mg.data, pixel_size_nm=(1e-12, 1e-12))


def test_unwritable_output_path_is_one_line_naming_it(tmp_path, capsys):
    from latticefit.cli import main

    mg = synth.perovskite_111(shape=(128, 128), noise_sigma=0.1, seed=6)[0]
    img = write_tif(tmp_path / "img.tif", mg)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    assert main(["lattice", str(img), "--json", str(blocker / "out.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "blocker" in err[0] and "a file stands where a folder is needed" in err[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    resolution=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=32),
        st.sampled_from([0.0, -1.0, 1e-30, 1e30, 50.0, 40.0]),
    ),
    unit=st.sampled_from(["nm", "um", "micron", "\u00b5m", "A", "pm", "inch", "pixel", "", "=bad", "n m"]),
)
def test_tiff_calibration_metadata_is_a_positive_pixel_size_or_uncalibrated(tmp_path, resolution, unit):
    """Whatever an ImageJ TIFF declares (0, negative, NaN, inf, absurd or unknown units), the loader gives a
    finite positive pixel size or none (with a warning), or one error naming the file: never a crash."""
    import tifffile

    path = tmp_path / "meta.tif"
    r = float(resolution)
    try:
        tifffile.imwrite(path, np.ones((32, 32), np.uint16), imagej=True, resolution=(r, r), metadata={"unit": unit})
    except (ValueError, OverflowError, ZeroDivisionError, struct.error):
        return  # tifffile itself cannot write such a tag
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mg = load(path)
        except LatticefitError as e:
            assert "meta.tif" in str(e) and "\n" not in str(e)
            return
    if mg.pixel_size_nm is not None:
        assert all(np.isfinite(v) and v > 0 for v in mg.pixel_size_nm)
