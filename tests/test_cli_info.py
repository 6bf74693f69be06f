"""``latticefit info``: table, --json, per-file errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latticefit.cli import main


def _imagej(path, shape=(24, 32), px_nm=0.05):
    import tifffile

    tifffile.imwrite(
        path,
        np.random.default_rng(0).random(shape).astype(np.float32),
        imagej=True,
        resolution=(1 / px_nm, 1 / px_nm),
        metadata={"unit": "nm"},
    )
    return path


def test_info_json_one_object_per_line(tmp_path, capsys):
    f = _imagej(tmp_path / "a.tif")
    g = _imagej(tmp_path / "b.tif", shape=(3, 16, 20), px_nm=0.2)
    assert main(["info", "--json", str(f), str(g)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    a, b = (json.loads(line) for line in lines)
    assert a["file"] == str(f) and a["shape"] == [24, 32] and a["frames"] == 1
    assert a["pixel_size_nm"] == pytest.approx([0.05, 0.05])
    assert b["shape"] == [16, 20] and b["frames"] == 3 and b["pixel_size_nm"] == pytest.approx([0.2, 0.2])
    for key in ("format", "dtype", "beam_energy_kv", "title", "mode", "signals"):
        assert key in a


def test_info_real_velox(realfile, capsys):
    f = realfile("loaders/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd")
    assert main(["info", "--json", "--signal", "DF2", str(f)]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["title"] == "DF2" and rec["signals"] == ["HAADF", "DF2", "BF", "DF4"]
    assert rec["pixel_size_nm"] == pytest.approx([87.3708, 87.3708], rel=1e-5)
    assert rec["beam_energy_kv"] == 300.0 and rec["format"] == "Velox EMD"


def test_info_human_table(realfile, capsys):
    f = realfile("particles/03_Scanning Preview.emi")
    assert main(["info", str(f)]) == 0
    out = capsys.readouterr().out
    assert "0.384352 nm/px" in out and "frames       5" in out and "STEM" in out and "200 kV" in out


def test_info_bad_file_one_stderr_line_others_print(tmp_path, capsys):
    good = _imagej(tmp_path / "good.tif")
    bad = tmp_path / "bad.dm3"
    bad.write_text("not a dm3 file\n")
    assert main(["info", "--json", str(bad), str(good)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "Traceback" not in cap.err
    assert json.loads(cap.out)["file"] == str(good)


def test_info_missing_and_unknown(tmp_path, capsys):
    x = tmp_path / "data.xyz"
    x.write_text("1")
    assert main(["info", str(tmp_path / "missing.dm4"), str(x)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 2 and "not found" in err[0] and ".xyz" in err[1]
    assert "Traceback" not in cap.err and cap.out == ""


def test_info_pixel_size_override(tmp_path, capsys):
    import tifffile

    f = tmp_path / "plain.tif"
    tifffile.imwrite(f, np.zeros((10, 12), np.uint8))
    assert main(["info", "--json", "--pixel-size", "2A", str(f)]) == 0
    assert json.loads(capsys.readouterr().out)["pixel_size_nm"] == pytest.approx([0.2, 0.2])
    from latticefit.errors import CalibrationWarning

    with pytest.warns(CalibrationWarning, match="uncalibrated"):
        assert main(["info", "--json", str(f)]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["pixel_size_nm"] is None
