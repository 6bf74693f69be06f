"""Batch processing (issue 7): discovery, records and resume, bad files, parallel runs, tables, page, CLI.

The machinery tests inject two tiny analyzers through ``batch.run(analyzers=...)``
(module-level, so that they pickle to worker processes); the end-to-end tests
(``test_batch_cli.py``) run the real lattice and particle analyses.
"""

from __future__ import annotations

import json
import os
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest

from latticefit.batch import AnalysisOutcome, RecordStore, build_tables, file_content_hash, signal_tags
from latticefit.batch import _run as batch
from latticefit.errors import LatticefitError
from latticefit.micrograph import Micrograph
from latticefit.synth import _core as synth


# ----------------------------------------------------------------------------- tiny analyzers (test seam)
def tiny_lattice(mg, settings):
    """Mean intensity as a stand-in 'd-spacing', two spot rows, no figure."""
    m = float(mg.data.mean())
    return AnalysisOutcome(
        summary={"n_spots": 2, "d_angstrom": m},
        result={"mean": m},
        spots=pd.DataFrame({"d_angstrom": [m, m / 2], "order": [1, 2]}),
    )


def tiny_particles(mg, settings):
    """Count of bright pixels as 'particles', a small figure."""
    import matplotlib.figure

    n = int((mg.data > mg.data.mean() + 2 * mg.data.std()).sum())
    fig = matplotlib.figure.Figure(figsize=(1.5, 1.5), dpi=40)
    fig.add_subplot().imshow(mg.data, cmap="gray")
    return AnalysisOutcome(
        summary={"n_particles": n, "mean_nm": 1.5},
        result={"n": n},
        figure=fig,
        particles=pd.DataFrame({"diameter_nm": [1.0, 2.0], "edge": [False, True]}),
    )


def crashing_particles(mg, settings):
    """Kills its worker process on files named crash*: a reader segfault, the OOM killer."""
    if Path(mg.source or "").name.startswith("crash"):
        os._exit(3)
    return tiny_particles(mg, settings)


def failing_lattice(mg, settings):
    raise LatticefitError("no lattice found", mg.source)


TINY = {"lattice": tiny_lattice, "particles": tiny_particles}


# ----------------------------------------------------------------------------- files
def write_tif(path, mg):
    """ImageJ TIFF with calibration and no acquisition mode (auto mode decides from the pixels)."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    r = 1.0 / mg.pixel_size_nm[1]
    tifffile.imwrite(path, mg.data, imagej=True, resolution=(r, r), metadata={"unit": "nm"})
    return path


def lattice_mg(seed=0, n=128):
    return synth.perovskite_111(shape=(n, n), noise_sigma=0.1, seed=seed)[0]


def dots_mg(seed=0, n=128):
    return synth.haadf_dots((n, n), pixel_size_nm=0.4, diameter_nm=5.0, n_particles=6, n_touching_pairs=0, seed=seed)[0]


@pytest.fixture(scope="module")
def _mixed_folder_master(tmp_path_factory):
    d = tmp_path_factory.mktemp("master") / "session"
    for i in range(3):
        write_tif(d / f"lat_{i}.tif", lattice_mg(i))
    write_tif(d / "day2" / "lat_3.tif", lattice_mg(3))
    for i in range(3):
        dots_mg(i).to_signal().save(d / f"dots_{i}.hspy")
    (d / "notes.txt").write_text("beam current 50 pA")
    (d / ".DS_Store").write_bytes(b"\0")
    return d


@pytest.fixture
def mixed_folder(_mixed_folder_master, tmp_path):
    """4 lattice tifs (one in a sub-folder), 3 HAADF .hspy, a note and a hidden file (a fresh copy)."""
    import shutil

    return Path(shutil.copytree(_mixed_folder_master, tmp_path / "session"))


@pytest.fixture(scope="module")
def serial_summary(_mixed_folder_master, tmp_path_factory):
    """The in-process (jobs=1) summary of the mixed folder, the reference of the parallel runs."""
    return batch.run(_mixed_folder_master, tmp_path_factory.mktemp("serial") / "out", jobs=1, analyzers=TINY)


def without_timing(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in batch.TIMING_COLUMNS if c in df.columns])


# ----------------------------------------------------------------------------- discovery
def test_discover_recursive_pattern_companions_hidden(tmp_path):
    d = tmp_path
    for rel in [
        "a.dm4",
        "B.DM3",
        "scan.emi",
        "scan_1.ser",
        "orphan_1.ser",
        "notes.txt",
        "noext",
        ".hidden.dm4",
        "sub/c.emd",
        "sub/deeper/d.tif",
        ".git/x.dm4",
        "out/old.dm4",
        "old_results/a.dm4.lattice.png",
        "old_results/.latticefit/settings.json",
    ]:
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    top = batch.discover_files(d)
    assert [(f.relpath, f.supported) for f in top] == [
        ("B.DM3", True),
        ("a.dm4", True),
        ("noext", False),
        ("notes.txt", False),
        ("orphan_1.ser", True),
        ("scan.emi", True),
    ]
    assert "unsupported file type '.txt'" in next(f.note for f in top if f.relpath == "notes.txt")
    rec = [f.relpath for f in batch.discover_files(d, recursive=True, exclude=[d / "out"])]
    assert "sub/c.emd" in rec and "sub/deeper/d.tif" in rec
    assert not any(r.startswith((".git", "out/", "old_results")) or "hidden" in r for r in rec)
    assert rec.count("scan.emi") == 1 and "scan_1.ser" not in rec  # .emi + .ser counted once
    assert [f.relpath for f in batch.discover_files(d, recursive=True, pattern="*.dm?")] == [
        "B.DM3",
        "a.dm4",
        "out/old.dm4",
    ]
    assert [f.relpath for f in batch.discover_files(d, recursive=True, pattern=["sub/*.emd", "deeper/*"])] == [
        "sub/c.emd",
        "sub/deeper/d.tif",
    ]
    with pytest.raises(LatticefitError, match="folder not found"):
        batch.discover_files(d / "nope")


def test_signal_tags_and_settings_digest():
    assert signal_tags(["HAADF", "DF2", "BF", "DF2"]) == ["HAADF", "DF2", "BF", "DF2-3"]
    s1 = batch.batch_settings(mode="lattice", pixel_size="0.21A")
    s2 = batch.batch_settings(mode="lattice", pixel_size=0.021)
    assert batch.settings_digest(s1) == batch.settings_digest(s2)
    assert batch.settings_digest(s1) != batch.settings_digest(batch.batch_settings(mode="both"))
    with pytest.raises(LatticefitError, match="mode must be one of"):
        batch.batch_settings(mode="fast")


# ----------------------------------------------------------------------------- auto mode
def test_choose_analysis_metadata_then_image():
    z = np.zeros((64, 64))
    assert batch.choose_analysis(Micrograph(z, mode="HAADF"))[0] == "particles"
    assert batch.choose_analysis(Micrograph(z, mode="STEM"))[0] == "particles"
    assert batch.choose_analysis(Micrograph(z, mode="TEM"))[0] == "lattice"
    assert batch.choose_analysis(Micrograph(z, mode="BF"))[0] == "lattice"
    # no mode: the pixels decide (ground truth: synth lattice vs synth particles)
    for seed in range(3):
        for n in (128, 512):
            lat = lattice_mg(seed, n)
            lat.mode = None
            dots = synth.haadf_dots(
                (n, n),
                pixel_size_nm=0.4,
                diameter_nm=5.0,
                n_particles=6 if n == 128 else 60,
                n_touching_pairs=1,
                seed=seed,
            )[0]
            dots.mode = None
            a, why = batch.choose_analysis(lat)
            assert a == "lattice" and why.startswith("image: periodicity"), why
            assert batch.choose_analysis(dots)[0] == "particles"
    # atomic-resolution HAADF (a lattice image with a HAADF detector): lattice only, its columns are no particles
    lat.mode = "HAADF"
    [(a, why)] = batch.choose_analyses(lat)
    assert a == "lattice" and why.startswith("metadata: HAADF; image: periodicity") and "particles not run" in why
    dots.mode = "HAADF"
    [(a, why)] = batch.choose_analyses(dots)
    assert a == "particles" and why.startswith("metadata: HAADF; image: periodicity") and "< 10" in why


def test_auto_mode_tiny_field_of_view_is_lattice():
    """A 3.2 nm wide noisy lattice image scores below the periodicity threshold, but cannot hold a particle of
    >= 1 nm: lattice, with the reason."""
    mg = synth.perovskite_111(shape=(128, 128), noise_sigma=0.4, seed=0)[0]  # pixel 0.025 nm
    mg.mode = None
    assert batch.periodicity_score(mg.data) < batch.PERIODICITY_THRESHOLD  # the case the field-of-view rule catches
    a, why = batch.choose_analysis(mg)
    assert a == "lattice" and "field of view 3.2 nm holds no particle >= 1 nm" in why, why
    mg.mode = "HAADF"
    a, why = batch.choose_analysis(mg)
    assert a == "lattice" and why.startswith("metadata: HAADF") and "field of view" in why, why
    big = dots_mg(0)  # 51 nm across
    big.mode = None
    assert batch.choose_analysis(big)[0] == "particles"


def test_auto_mode_real_atomic_resolution_haadf_is_lattice_only(realdata):
    """Cropped_PTO-SRO_Aligned.hspy (HAADF, atomic columns) once gave 158 'particles' of 0.21 nm."""
    from latticefit import io

    mg = io.load(realdata / "lattice" / "Cropped_PTO-SRO_Aligned.hspy")
    [(a, why)] = batch.choose_analyses(mg)
    assert a == "lattice" and "particles not run" in why, why


def test_periodicity_score_separates_noise_and_fringes():
    rng = np.random.default_rng(3)
    for n in (128, 200, 1024):
        noise = rng.normal(0, 1, (n, n))
        y, x = np.mgrid[:n, :n]
        fringes = noise + 1.0 * np.cos(2 * np.pi * (0.8 * x + 0.6 * y) / 6.1)
        assert batch.periodicity_score(noise) < batch.PERIODICITY_THRESHOLD / 1.5
        assert batch.periodicity_score(fringes) > 2 * batch.PERIODICITY_THRESHOLD


# ----------------------------------------------------------------------------- one run, in process
def test_run_writes_results_tables_figures(mixed_folder, tmp_path):
    out = tmp_path / "out"
    summary = batch.run(mixed_folder, out, recursive=True, jobs=1, analyzers=TINY)
    files = sorted(summary["file"])
    assert files == sorted(
        [
            "lat_0.tif",
            "lat_1.tif",
            "lat_2.tif",
            "day2/lat_3.tif",
            "dots_0.hspy",
            "dots_1.hspy",
            "dots_2.hspy",
            "notes.txt",
        ]
    )
    by = summary.set_index("file")
    assert by.loc["notes.txt", "status"] == "skipped"
    assert (by.drop(index="notes.txt")["status"] == "ok").all()
    # auto: HAADF metadata -> particles; tifs without a mode -> periodic -> lattice
    assert set(by.loc[[f for f in files if f.endswith(".hspy")], "analysis"]) == {"particles"}
    assert set(by.loc[[f for f in files if f.endswith(".tif")], "analysis"]) == {"lattice"}
    assert by.loc["dots_0.hspy", "analysis_reason"].startswith("metadata: HAADF; image: periodicity")
    assert by.loc["lat_0.tif", "analysis_reason"].startswith("image: periodicity")
    # per-file outputs mirror the tree; the summary points at them
    assert (out / "day2" / "lat_3.tif.lattice.json").is_file()
    assert (out / "dots_1.hspy.particles.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "dots_1.hspy.particles.json").read_text())
    assert doc["file"] == "dots_1.hspy" and doc["analysis"] == "particles" and doc["result"]["n"] >= 0
    assert by.loc["dots_1.hspy", "figure"] == "dots_1.hspy.particles.png"
    # the tables on disk equal the returned summary and hold every row with its file
    on_disk = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert list(on_disk["file"]) == list(summary["file"])
    spots = pd.read_csv(out / "spots.csv")
    assert len(spots) == 2 * 4 and set(spots["file"]) == {"lat_0.tif", "lat_1.tif", "lat_2.tif", "day2/lat_3.tif"}
    parts = pd.read_csv(out / "particles.csv")
    assert len(parts) == 2 * 3 and list(parts.columns[:3]) == ["file", "signal", "diameter_nm"]
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["file"]) == ["notes.txt"] and list(errors["status"]) == ["skipped"]
    assert "n_spots" in on_disk.columns and str(on_disk["n_spots"].iloc[0]) in ("2", "")  # integers stay integers
    # content hash of every processed file recorded
    rec = RecordStore(out).load("lat_0.tif")
    assert rec["content_hash"] == file_content_hash(mixed_folder / "lat_0.tif")


def test_failed_analysis_is_an_error_row_and_the_run_goes_on(mixed_folder, tmp_path):
    summary = batch.run(
        mixed_folder,
        tmp_path / "out",
        mode="both",
        jobs=1,
        analyzers={"lattice": failing_lattice, "particles": tiny_particles},
    )
    ok = summary[summary["status"] == "ok"]
    bad = summary[summary["status"] == "error"]
    assert set(ok["analysis"]) == {"particles"} and set(bad["analysis"]) == {"lattice"}
    assert (bad["error"] == "no lattice found").all()  # one line, the file is in its own column
    assert batch.failed_files(summary) == sorted(set(bad["file"]))
    errors = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert len(errors[errors["status"] == "error"]) == len(bad)
    assert list(errors.columns) == ["file", "signal", "analysis", "status", "error"]
    assert set(errors.loc[errors["status"] == "error", "analysis"]) == {"lattice"}


def failing_particles(mg, settings):
    raise LatticefitError("no particles found", mg.source)


def test_errors_csv_says_which_analysis_failed(tmp_path):
    """A file failing in both analyses (mode both) gives two error rows that differ by their analysis."""
    d = tmp_path / "in"
    write_tif(d / "a.tif", lattice_mg(0))
    batch.run(
        d, tmp_path / "out", mode="both", jobs=1, analyzers={"lattice": failing_lattice, "particles": failing_particles}
    )
    errors = pd.read_csv(tmp_path / "out" / "errors.csv", keep_default_na=False)
    assert errors[["file", "analysis", "status", "error"]].values.tolist() == [
        ["a.tif", "lattice", "error", "no lattice found"],
        ["a.tif", "particles", "error", "no particles found"],
    ]
    assert not errors.duplicated(subset=["file", "signal", "analysis"]).any()


def test_bad_files_are_listed_and_others_processed(tmp_path):
    d = tmp_path / "in"
    write_tif(d / "good.tif", lattice_mg(1))
    dots_mg(2).to_signal().save(d / "good.hspy")
    (d / "corrupt.dm4").write_bytes(b"\x00\x00\x00\x04" + os.urandom(300))
    (d / "empty.dm3").write_bytes(b"")
    (d / "text.dm3").write_text("this is not a DigitalMicrograph file\n")
    (d / "data.xlsx").write_bytes(b"PK\x03\x04")
    summary = batch.run(d, tmp_path / "out", jobs=1, analyzers=TINY)
    errors = pd.read_csv(tmp_path / "out" / "errors.csv", keep_default_na=False)
    status = dict(zip(errors["file"], errors["status"]))
    assert status == {"corrupt.dm4": "error", "empty.dm3": "error", "text.dm3": "error", "data.xlsx": "skipped"}
    msg = dict(zip(errors["file"], errors["error"]))
    assert "empty" in msg["empty.dm3"] and "DigitalMicrograph" in msg["text.dm3"]
    assert all("\n" not in m and "Traceback" not in m for m in msg.values())
    assert set(summary.loc[summary["status"] == "ok", "file"]) == {"good.tif", "good.hspy"}


# ----------------------------------------------------------------------------- resume and atomic writes
def test_resume_reuses_only_matching_records(mixed_folder, tmp_path):
    out = tmp_path / "out"
    first = batch.run(mixed_folder, out, jobs=1, analyzers=TINY)
    store = RecordStore(out)
    # a rewritten record is a new file (temp + rename): a new inode
    t_before = {f: store.path_for(f).stat().st_ino for f in first["file"] if f != "notes.txt"}
    # change one file's bytes, delete one figure, corrupt one record, leave a stale temp file
    write_tif(mixed_folder / "lat_1.tif", lattice_mg(11))
    (out / "dots_0.hspy.particles.png").unlink()
    store.path_for("lat_2.tif").write_text('{"record_version": 1, "file": "lat_2')
    stale = store.root / ".0123.json.abcd.tmp"
    stale.write_text("{")
    again = batch.run(mixed_folder, out, jobs=1, resume=True, analyzers=TINY)
    redone = {f for f, t in t_before.items() if store.path_for(f).stat().st_ino != t}
    assert redone == {"lat_1.tif", "dots_0.hspy", "lat_2.tif"}
    assert not stale.exists()
    assert len(again) == len(first)  # never a duplicated row
    assert (out / "dots_0.hspy.particles.png").is_file()
    # other settings: nothing is reused
    t_mid = {f: store.path_for(f).stat().st_ino for f in t_before}
    batch.run(mixed_folder, out, jobs=1, resume=True, mode="both", analyzers=TINY)
    assert all(store.path_for(f).stat().st_ino != t for f, t in t_mid.items())


def test_uninterrupted_equals_resumed_tables(mixed_folder, tmp_path, monkeypatch):
    full = batch.run(mixed_folder, tmp_path / "full", jobs=1, analyzers=TINY)
    # a run that stops after 3 files (as a kill would), then resumes
    import latticefit.batch._run as B

    real = B._write_outputs
    calls = {"n": 0}

    def dying(out, outputs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        real(out, outputs)

    monkeypatch.setattr(B, "_write_outputs", dying)
    with pytest.raises(KeyboardInterrupt):
        batch.run(mixed_folder, tmp_path / "part", jobs=1, analyzers=TINY)
    monkeypatch.setattr(B, "_write_outputs", real)
    assert len(list(RecordStore(tmp_path / "part").root.glob("*.json"))) == 3
    resumed = batch.run(mixed_folder, tmp_path / "part", jobs=1, resume=True, analyzers=TINY)
    pd.testing.assert_frame_equal(without_timing(full), without_timing(resumed))
    for name in ("spots", "particles", "errors"):
        a = (tmp_path / "full" / f"{name}.csv").read_text()
        b = (tmp_path / "part" / f"{name}.csv").read_text()
        assert a == b, name


def test_atomic_write_keeps_old_content_when_interrupted(tmp_path, monkeypatch):
    from latticefit.batch import _store as _batch_store

    store = RecordStore(tmp_path)
    store.save({"record_version": 1, "file": "a.dm4", "status": "ok"})
    p = store.path_for("a.dm4")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.save({"record_version": 1, "file": "a.dm4", "status": "error"})
    with pytest.raises(OSError):
        _batch_store.atomic_write_bytes(tmp_path / "fig.png", b"png")
    monkeypatch.undo()
    assert json.loads(p.read_text())["status"] == "ok"
    assert not (tmp_path / "fig.png").exists()
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary left behind


def test_build_tables_sorted_and_deduplicated():
    def rec(f, n):
        return {
            "file": f,
            "rows": [{"signal": "s", "analysis": "lattice", "status": "ok", "n_spots": n}],
            "spots": [{"signal": "s", "rows": [{"d_angstrom": 1.0}] * n}],
            "particles": [],
        }

    t = build_tables([rec("b.dm4", 2), rec("a.dm4", 1)], [{"file": "c.txt", "note": "skipped"}])
    assert list(t["summary"]["file"]) == ["a.dm4", "b.dm4", "c.txt"]
    assert list(t["spots"]["file"]) == ["a.dm4", "b.dm4", "b.dm4"]
    assert str(t["summary"]["n_spots"].dtype) == "Int64"


# ----------------------------------------------------------------------------- parallel
def test_process_pool_jobs2_equals_serial_and_survives_a_crash(mixed_folder, serial_summary, tmp_path):
    import shutil

    shutil.copy(mixed_folder / "dots_1.hspy", mixed_folder / "crash.hspy")
    pooled = batch.run(
        mixed_folder, tmp_path / "p", jobs=2, analyzers={"lattice": tiny_lattice, "particles": crashing_particles}
    )
    crash = pooled[pooled["file"] == "crash.hspy"]
    assert list(crash["status"]) == ["error"] and "worker process died" in crash["error"].iloc[0]
    rest = pooled[pooled["file"] != "crash.hspy"].reset_index(drop=True)
    pd.testing.assert_frame_equal(without_timing(serial_summary), without_timing(rest), check_dtype=False)
    rec = RecordStore(tmp_path / "p").load("crash.hspy")
    assert rec["retry_on_resume"] is True  # a crash is retried by --resume, a bad file is not


def test_dask_local_cluster(_mixed_folder_master, serial_summary, tmp_path):
    pytest.importorskip("distributed")
    before = dict(os.environ)
    via_local = batch.run(_mixed_folder_master, tmp_path / "l", scheduler="local", jobs=1, analyzers=TINY)
    assert dict(os.environ) == before
    pd.testing.assert_frame_equal(without_timing(serial_summary), without_timing(via_local))


def test_dask_missing_is_one_line_error(mixed_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(LatticefitError, match=r"pip install 'latticefit\[dask\]'"):
        batch.run(mixed_folder, tmp_path / "o", scheduler="local", analyzers=TINY)


# ----------------------------------------------------------------------------- the page
class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.imgs, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self.hrefs.append(unquote(a["href"]))
        if tag == "img":
            self.imgs.append(unquote(a["src"]))
        if tag in ("script", "link", "img") and any(
            str(a.get(k, "")).startswith(("http:", "https:", "//")) for k in ("src", "href")
        ):
            self.external.append(a)


def test_index_html_links_every_figure_and_is_offline(mixed_folder, tmp_path):
    out = tmp_path / "out"
    summary = batch.run(mixed_folder, out, recursive=True, mode="both", jobs=1, analyzers=TINY)
    page = (out / "index.html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(page)
    figures = [f for f in summary["figure"] if isinstance(f, str) and f]
    assert len(figures) == 7  # tiny_particles draws one per image, tiny_lattice none
    assert set(figures) <= set(parser.hrefs) and set(figures) <= set(parser.imgs)
    for link in parser.hrefs + parser.imgs:
        assert (out / link).is_file(), link
    assert not parser.external and "<script>" in page
    assert page.count("<tr") == len(summary) + 1


def test_index_html_message_beside_status_and_consistent_numbers():
    from latticefit.batch import index_html

    summary = pd.DataFrame(
        [
            {
                "file": "bad.png",
                "signal": "",
                "analysis": "lattice",
                "status": "error",
                "error": "bad.png: no pixel size in the file: pass --pixel-size",
                "warnings": "",
            },
            {
                "file": "dots.dm4",
                "signal": "",
                "analysis": "particles",
                "status": "ok",
                "error": "",
                "warnings": "",
                "n_particles": 158,
                "mean_nm": 4.00123,
                "mean_err_nm": 0.0512,
                "std_nm": 0.30634,
                "rsd_percent": 7.6561,
                "figure": "dots.dm4.particles.png",
                "json": "dots.dm4.particles.json",
            },
            {
                "file": "lat.emd",
                "signal": "",
                "analysis": "lattice",
                "status": "ok",
                "error": "",
                "warnings": "0/15 spots indexed against SrTiO3: calibration off? try --free-scale",
                "n_spots": 15,
                "d_angstrom": 2.76123,
                "d_err_angstrom": 0.00123,
                "n_indexed": 0,
            },
        ]
    )
    page = index_html(summary)
    head = page.split("<thead>")[1].split("</thead>")[0]
    headers = [h.split("</th>")[0] for h in head.split("<th>")[1:]]
    i = headers.index("status")
    assert headers[i + 1] == "error / warnings"  # on screen, not in the last column
    rows = page.split("<tbody>")[1].split("</tbody>")[0].strip().split("\n")
    import re

    cells = [[re.sub(r"<[^>]+>", "", c.split(">", 1)[1].split("</td>")[0]) for c in r.split("<td")[1:]] for r in rows]
    assert cells[0][i + 1] == "no pixel size in the file: pass --pixel-size"  # the row names the file already
    assert cells[2][i + 1].startswith("0/15 spots indexed against SrTiO3")
    by_header = dict(zip(headers, cells[1]))
    assert by_header["mean (nm)"] == "4.00 ± 0.05" and by_header["std (nm)"] == "0.31"
    assert by_header["RSD (%)"] == "7.7" and by_header["n particles"] == "158"
    assert dict(zip(headers, cells[2]))["strongest d (Å)"] == "2.7612 ± 0.0012"


def test_particle_figure_title_states_detected_and_counted():
    import matplotlib.text

    from latticefit.batch import analyze_particles

    mg = synth.haadf_dots(
        (256, 256), pixel_size_nm=0.25, diameter_nm=5.0, n_particles=14, n_touching_pairs=0, allow_edge=True, seed=4
    )[0]
    out = analyze_particles(mg, {})
    n_det, n_stat = out.summary["n_detected"], out.summary["n_particles"]
    texts = [t.get_text() for t in out.figure.findobj(matplotlib.text.Text)]
    assert n_det > n_stat  # seed 4 has dots cut by the image edge, left out of the statistics
    assert f"(a) {n_det} detected, {n_stat} in statistics" in texts, texts
    assert f"n = {n_stat}" in "\n".join(texts)


def test_index_html_renders_in_headless_chromium(mixed_folder, tmp_path):
    import shutil
    import subprocess

    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if exe is None:
        pytest.skip("chromium is not installed")
    out = tmp_path / "out"
    batch.run(mixed_folder, out, jobs=1, analyzers=TINY)
    shot = tmp_path / "page.png"
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        "--window-size=1400,900",
        (out / "index.html").as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert shot.is_file() and shot.stat().st_size > 5000
    import imageio.v3 as iio

    img = iio.imread(shot)
    assert img.shape[0] == 900 and img[..., :3].std() > 10  # not a blank page


def test_no_figures_keeps_every_number_and_writes_no_png(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    mg = synth.perovskite_111(shape=(128, 128), noise_sigma=0.2, seed=3)[0]
    import tifffile

    tifffile.imwrite(
        folder / "a.tif",
        mg.data.astype("float32"),
        imagej=True,
        resolution=(1 / mg.pixel_size_nm[1], 1 / mg.pixel_size_nm[0]),
        metadata={"unit": "nm"},
    )
    with_fig = batch.run(folder, tmp_path / "fig", jobs=1, mode="lattice")
    without = batch.run(folder, tmp_path / "nofig", jobs=1, mode="lattice", figures=False)
    assert not list((tmp_path / "nofig").rglob("*.png"))
    assert list((tmp_path / "fig").rglob("*.png"))
    keep = [c for c in with_fig.columns if not c.endswith("_s") and c != "figure"]
    pd.testing.assert_frame_equal(with_fig[keep].reset_index(drop=True), without[keep].reset_index(drop=True))
