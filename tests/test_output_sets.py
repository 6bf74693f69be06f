"""Every output set (figure, JSON, CSVs) appears as a whole or not at all (#17: a full disk mid-report)."""

from __future__ import annotations

import errno
import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from latticefit import serialize  # noqa: E402
from latticefit.cli import main  # noqa: E402
from latticefit.serialize import OutputSet  # noqa: E402


@pytest.fixture(scope="module")
def blank_file(tmp_path_factory):
    import hyperspy.api as hs

    path = tmp_path_factory.mktemp("in") / "blank.hspy"
    s = hs.signals.Signal2D(np.full((192, 192), 7.0, np.float32))
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.units = 0.02, "nm"
    s.save(path, overwrite=True)
    return path


def _disk_full_at(monkeypatch, n_ok):
    """Let the first ``n_ok`` staged writes through, then fail as a full disk does (no file name)."""
    calls = {"n": 0}
    real = serialize._write_staged

    def write(tmp, data):
        calls["n"] += 1
        if calls["n"] > n_ok:
            with open(tmp, "wb") as fh:  # half a file, as a real full disk leaves it
                fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tmp, data)

    monkeypatch.setattr(serialize, "_write_staged", write)
    return calls


@pytest.mark.parametrize("n_ok", [0, 1, 2])
def test_report_on_a_full_disk_leaves_no_partial_set(blank_file, tmp_path, monkeypatch, capsys, n_ok):
    out = tmp_path / "out"
    out.mkdir()
    (out / "fig.png").write_bytes(b"old figure")  # an earlier run's file stays as it was
    calls = _disk_full_at(monkeypatch, n_ok)
    rc = main(["report", str(blank_file), "-o", str(out / "fig.png")])
    err = capsys.readouterr().err
    assert calls["n"] == n_ok + 1  # the failure came after the figure (and n_ok text files) were staged
    assert rc != 0 and err.count("latticefit: error") == 1 and "No space left" in err
    assert "fig" in err and "unexpected" not in err
    assert sorted(p.name for p in out.iterdir()) == ["fig.png"]  # no JSON/CSV, no temporaries
    assert (out / "fig.png").read_bytes() == b"old figure"


def test_report_set_appears_whole_when_the_disk_has_room(blank_file, tmp_path):
    rc = main(["report", str(blank_file), "-o", str(tmp_path / "fig.png")])
    assert rc == 2  # blank: nothing measured, but the set is written
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["fig.csv", "fig.json", "fig.png", "fig_spots.csv"], names
    assert json.loads((tmp_path / "fig.json").read_text())["notes"]


def test_output_set_commits_together_and_aborts_cleanly(tmp_path):
    with pytest.raises(RuntimeError):
        with OutputSet() as outs:
            outs.write_text(tmp_path / "a.json", "{}")
            raise RuntimeError("writer failed half-way")
    assert list(tmp_path.iterdir()) == []
    with OutputSet() as outs:
        staged = outs.stage(tmp_path / "b.png")
        assert staged.suffix == ".png" and staged.parent == tmp_path
        staged.write_bytes(b"png")
        outs.write_text(tmp_path / "b.csv", "x\n")
        assert not (tmp_path / "b.csv").exists()  # nothing visible before the commit
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv", "b.png"]


@pytest.fixture(scope="module")
def dots_file(tmp_path_factory):
    from latticefit.synth import haadf_dots

    mg, _ = haadf_dots((160, 160), pixel_size_nm=0.2, diameter_nm=5.0, n_particles=5, n_touching_pairs=0, seed=2)
    path = tmp_path_factory.mktemp("dots") / "dots.hspy"
    mg.to_signal().save(path, overwrite=True)
    return path


@pytest.fixture(scope="module")
def lattice_file(tmp_path_factory):
    from latticefit.synth import cubic_001

    mg, _ = cubic_001((192, 192), a_nm=0.3905, pixel_size_nm=0.02, seed=1)
    path = tmp_path_factory.mktemp("lat") / "lattice.hspy"
    mg.to_signal().save(path, overwrite=True)
    return path


@pytest.mark.parametrize("n_ok", [0, 1])
def test_particles_json_csv_and_overlay_appear_together(dots_file, tmp_path, monkeypatch, capsys, n_ok):
    calls = _disk_full_at(monkeypatch, n_ok)
    out = tmp_path / "out"
    args = ["particles", str(dots_file), "--json", str(out / "p.json"), "--csv", str(out / "p.csv")]
    rc = main([*args, "--overlay", str(out / "p.png")])
    err = capsys.readouterr().err
    assert calls["n"] == n_ok + 1 and rc != 0 and "No space left" in err and "unexpected" not in err
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []  # no file, no temporary
    monkeypatch.undo()
    assert main([*args, "--overlay", str(out / "p.png")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p.csv", "p.json", "p.png"]


def test_gpa_figure_maps_and_json_appear_together(lattice_file, tmp_path, monkeypatch, capsys):
    calls = _disk_full_at(monkeypatch, 0)  # the JSON (the only text file) fails after figure and maps
    out = tmp_path / "out"
    args = ["gpa", str(lattice_file), "-o", str(out / "s.png"), "--json", str(out / "s.json")]
    rc = main(args)
    err = capsys.readouterr().err
    assert calls["n"] == 1 and rc != 0 and "No space left" in err and "unexpected" not in err
    assert sorted(p.name for p in out.iterdir()) == []
    monkeypatch.undo()
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["s.json", "s.npz", "s.png"]
