"""``latticefit batch`` end to end, with the real analyses: exit codes, bad files, SIGKILL + --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latticefit.batch import RecordStore
from latticefit.batch import _run as batch
from latticefit.cli import main
from latticefit.synth import _core as synth

TIMING = batch.TIMING_COLUMNS


def write_tif(path: Path, mg) -> Path:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    r = 1.0 / mg.pixel_size_nm[1]
    tifffile.imwrite(path, mg.data, imagej=True, resolution=(r, r), metadata={"unit": "nm"})
    return path


def make_session(folder: Path, n_lattice: int, n_dots: int, *, size: int = 256) -> Path:
    """HRTEM-like perovskite [111] tifs (no acquisition mode) and HAADF dot images (.hspy, mode HAADF)."""
    for i in range(n_lattice):
        mg, _ = synth.perovskite_111(shape=(size, size), noise_sigma=0.4, rotation_deg=7.0 * i, seed=i)
        write_tif(folder / ("sub" if i % 3 == 2 else "") / f"perovskite_{i:02d}.tif", mg)
    for i in range(n_dots):
        mg, _ = synth.haadf_dots(
            (size, size),
            pixel_size_nm=0.25 * 256 / size,
            diameter_nm=5.0,
            n_particles=8,
            n_touching_pairs=1,
            seed=100 + i,
        )
        (folder / "haadf").mkdir(parents=True, exist_ok=True)
        mg.to_signal().save(folder / "haadf" / f"dots_{i:02d}.hspy")
    return folder


def read_tables(out: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for name in ("summary", "spots", "particles", "errors"):
        df = pd.read_csv(out / f"{name}.csv", keep_default_na=False, dtype=str)
        tables[name] = df.drop(columns=[c for c in TIMING if c in df.columns])
    return tables


# ----------------------------------------------------------------------------- exit codes
def test_exit_code_2_for_bad_arguments(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "missing"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "folder not found" in err and err.count("\n") == 1 and "Traceback" not in err
    for bad in (["--jobs", "0"], ["--mode", "fast"], []):  # [] = no -o
        args = ["batch", str(tmp_path)] + bad + (["-o", str(tmp_path / "o")] if bad else [])
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "o"), "--phase", "unobtainium"]) == 2
    assert "unknown phase 'unobtainium'" in capsys.readouterr().err


def test_bad_files_exit_1_and_errors_csv(tmp_path, capsys):
    d = make_session(tmp_path / "in", 2, 0, size=128)
    (d / "corrupt.dm4").write_bytes(b"\x00\x00\x00\x04" + os.urandom(500))
    (d / "zero.dm3").write_bytes(b"")
    (d / "text.dm3").write_text("not an image\n")
    (d / "table.xlsx").write_bytes(b"PK\x03\x04 not supported")
    out = tmp_path / "out"
    code = main(["batch", str(d), "-o", str(out), "--jobs", "1", "--mode", "lattice"])
    captured = capsys.readouterr()
    assert code == 1
    assert "3 files failed" in captured.err and "3 failed, 1 skipped" in captured.out
    errors = pd.read_csv(out / "errors.csv", keep_default_na=False)
    assert dict(zip(errors["file"], errors["status"])) == {
        "corrupt.dm4": "error",
        "table.xlsx": "skipped",
        "text.dm3": "error",
        "zero.dm3": "error",
    }
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    ok = summary[summary["status"] == "ok"]
    assert sorted(ok["file"]) == ["perovskite_00.tif", "perovskite_01.tif"]
    assert (ok["n_spots"].astype(int) >= 3).all()
    # the strongest spacing is the perovskite {110}, 4.195 Å (synth ground truth), within its stated error
    dd, err = ok["d_angstrom"].astype(float), ok["d_err_angstrom"].astype(float)
    assert ((dd - 5.933 / 2**0.5).abs() < 4 * err).all(), (dd, err)
    # only the good files: exit 0
    for f in ("corrupt.dm4", "zero.dm3", "text.dm3"):
        (d / f).unlink()
    assert main(["batch", str(d), "-o", str(tmp_path / "out2"), "--jobs", "1", "-q"]) == 0
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- kill and resume
def _cli(*args) -> list[str]:
    code = "import sys; from latticefit.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, *map(str, args)]


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    folder = make_session(tmp_path / "session", 10, 0, size=128)
    make_session(folder, 0, 2, size=160)
    common = ["--recursive", "--jobs", "1", "--quiet"]
    # the reference (uninterrupted) and the run to kill start together, each in its own process (same
    # environment, so the same BLAS threads and the same floats); they share the two cores
    ref = subprocess.Popen(
        _cli("batch", folder, "-o", tmp_path / "full", *common), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out = tmp_path / "killed"
    records = RecordStore(out).root
    proc = subprocess.Popen(_cli("batch", folder, "-o", out, *common), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if records.is_dir() and len(list(records.glob("*.json"))) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    n_done = len(list(records.glob("*.json")))
    assert 3 <= n_done < 12
    # resume: only the unfinished files are processed, and the tables equal the uninterrupted run's
    before = {p.name: p.stat().st_ino for p in records.glob("*.json")}
    res = subprocess.run(_cli("batch", folder, "-o", out, *common, "--resume"), capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    after = {p.name: p.stat().st_ino for p in records.glob("*.json")}
    assert len(after) == 12 and all(after[k] == v for k, v in before.items())  # finished files not redone
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err.decode()
    full, resumed = read_tables(tmp_path / "full"), read_tables(out)
    for name in full:
        pd.testing.assert_frame_equal(full[name], resumed[name], obj=name)
    assert len(full["summary"]) == 12 and (full["summary"]["status"] == "ok").all()
    assert len(full["particles"]) > 0 and len(full["spots"]) > 0
    assert not list(out.rglob("*.tmp"))  # no temporary file of the killed run left behind


def test_phases_index_lattice_files(tmp_path):
    d = make_session(tmp_path / "in", 1, 0, size=256)
    summary = batch.run(d, tmp_path / "out", jobs=1, mode="lattice", phases=["MAPbBr3", "PbS"])
    row = summary.iloc[0]
    assert row["status"] == "ok" and row["phase"] == "MAPbBr3" and row["zone_axis"] == "[1 1 1]"
    spots = pd.read_csv(tmp_path / "out" / "spots.csv")
    first = spots[spots["order"] == 1]
    assert set(first["index_status"]) == {"allowed"}
    miller = first[["h", "k", "l"]].to_numpy()  # integer Miller columns; n1, n2 are the basis indices
    assert np.issubdtype(miller.dtype, np.integer) and sorted(np.abs(miller[0])) == [0, 1, 1]
    assert {"n1", "n2"} <= set(spots.columns)
    import json

    doc = json.loads((tmp_path / "out" / "perovskite_00.tif.lattice.json").read_text())
    assert doc["result"]["phase"] == "MAPbBr3" and doc["settings"]["phases"] == [{"phase": "MAPbBr3"}, {"phase": "PbS"}]
    # spots.csv: the g vector as gx/gy and its length as g_abs_inv_nm; no scalar named g_inv_nm
    assert "g_inv_nm" not in spots.columns and {"gx_inv_nm", "gy_inv_nm", "g_abs_inv_nm"} <= set(spots.columns)
    assert np.allclose(spots["g_abs_inv_nm"], np.hypot(spots["gx_inv_nm"], spots["gy_inv_nm"]), rtol=1e-6)
    assert "spots indexed against" not in row["warnings"]  # all indexed: no indexing warning


def test_missing_folder_writes_nothing_and_empty_folder_warns(tmp_path, capsys):
    out = tmp_path / "b_x"
    assert main(["batch", str(tmp_path / "nonexistent"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"latticefit: error: {tmp_path / 'nonexistent'}: folder not found\n"
    assert not out.exists()  # nothing written
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "-o", str(out), "-q"]) == 0
    assert "warning: no files found" in capsys.readouterr().err


def test_free_scale_indexes_a_miscalibrated_image_and_fixed_scale_warns(tmp_path, capsys):
    """File pixel size 6 % too large: fixed-scale indexing matches (almost) nothing and says so;
    --free-scale finds MAPbBr3 [111] and the implied factor 1/1.06 (ground truth: synth)."""
    mg, truth = synth.perovskite_111(shape=(256, 256), noise_sigma=0.4, seed=3)
    mg.pixel_size_nm = tuple(1.06 * p for p in mg.pixel_size_nm)
    d = tmp_path / "in"
    write_tif(d / "off.tif", mg)
    out_fixed, out_free = tmp_path / "fixed", tmp_path / "free"
    assert main(["batch", str(d), "-o", str(out_fixed), "--phase", "MAPbBr3", "--jobs", "1", "-q"]) == 0
    row = pd.read_csv(out_fixed / "summary.csv", keep_default_na=False).iloc[0]
    n_spots, n_indexed = int(row["n_spots"]), int(row["n_indexed"] or 0)
    assert 2 * n_indexed < n_spots
    note = f"{n_indexed}/{n_spots} spots indexed against MAPbBr3: calibration off? try --free-scale"
    assert note in row["warnings"] and note in (out_fixed / "index.html").read_text(encoding="utf-8")
    assert main(["batch", str(d), "-o", str(out_free), "--phase", "MAPbBr3", "--free-scale", "--jobs", "1", "-q"]) == 0
    row = pd.read_csv(out_free / "summary.csv", keep_default_na=False).iloc[0]
    assert row["phase"] == "MAPbBr3" and row["zone_axis"] == "[1 1 1]" and int(row["n_indexed"]) == int(row["n_spots"])
    k, k_err = float(row["scale_factor"]), float(row["scale_factor_err"])
    assert 0 < k_err < 0.01 and abs(k - 1 / 1.06) < max(4 * k_err, 0.003), (k, k_err)
    assert "spots indexed against" not in row["warnings"]
    # --free-scale without --phase is a bad argument
    assert main(["batch", str(d), "-o", str(tmp_path / "o3"), "--free-scale"]) == 2
    assert "free_scale needs phases" in capsys.readouterr().err
