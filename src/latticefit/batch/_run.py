"""Batch processing: a folder of microscope exports in, a table of results, figures and a browsable page out.

:func:`run` (the ``latticefit batch`` command) finds every supported file in
a folder, analyses each image (the lattice of HRTEM images, the particles of
HAADF-STEM images, or both), and writes under the output folder

- per file and signal: ``<relpath>[.<signal>].<analysis>.json`` (the full
  result) and ``.png`` (a small figure), mirroring the input folder tree;
- ``summary.csv``: one row per file, signal and analysis with its key numbers,
  status and timings; ``spots.csv`` and ``particles.csv``: every spot and
  particle with its file; ``errors.csv``: the files that failed or were
  skipped, with a one-line reason;
- ``index.html``: a sortable table with thumbnails that opens offline.

Files are processed in parallel (a process pool on this machine, or a
dask.distributed cluster), a bad file is recorded and the run goes on, and a
run that was killed resumes where it stopped (``resume=True``): every
finished file has a record (``OUT/.latticefit/records/``, written atomically
with the file's content hash and the settings), the tables are rebuilt from
the records, and a record is reused only when both hashes still match.

Examples
--------
>>> import tempfile, pathlib
>>> from latticefit import batch, synth
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> for seed in range(2):
...     mg, _ = synth.haadf_dots((256, 256), pixel_size_nm=0.2, n_particles=12, n_touching_pairs=1, seed=seed)
...     mg.to_signal().save(folder / f"dots_{seed}.hspy")
>>> summary = batch.run(folder, folder / "out", jobs=1)  # doctest: +SKIP
>>> summary[["file", "analysis", "status", "n_particles"]]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__
from ..errors import LatticefitError
from ..serialize import atomic_write_text, dumps
from ..units import pixel_size_pair_nm
from ._auto import PERIODICITY_THRESHOLD, choose_analyses, choose_analysis, periodicity_score
from ._discover import FoundFile, discover_files
from ._exec import default_jobs, run_dask, run_process_pool, run_serial
from ._store import TIMING_COLUMNS, RecordStore, atomic_write_bytes, build_tables, file_content_hash, write_tables
from ._task import AnalysisOutcome, FileTask, content_files, process_file

__all__ = [
    "run",
    "discover_files",
    "FoundFile",
    "batch_settings",
    "settings_digest",
    "AnalysisOutcome",
    "MODES",
    "TIMING_COLUMNS",
    "choose_analysis",
    "choose_analyses",
    "periodicity_score",
    "PERIODICITY_THRESHOLD",
    "file_content_hash",
    "failed_files",
]

#: values of ``mode``
MODES = ("auto", "lattice", "particles", "both")


def _callable_name(fn) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def _phase_entries(phases) -> list[dict]:
    """Phase names (checked against the library) and CIF files (with their content hash, so that an
    edited CIF makes ``resume`` redo the lattice files).
    """
    from ..crystal._phases import get_phase, is_cif_path

    out = []
    for ph in [phases] if isinstance(phases, str) else (phases or ()):
        p = Path(str(ph))
        if is_cif_path(ph):
            if not p.is_file():
                raise LatticefitError("CIF file not found", str(ph))
            out.append({"phase": str(p.resolve()), "content_hash": file_content_hash(p)})
        else:
            out.append({"phase": get_phase(str(ph)).name})  # an unknown name is an error now, not per file
    return out


def _calibration_record(calibration) -> dict:
    from ..crystal._calibration import as_calibration

    cal = as_calibration(calibration)
    d = cal.to_dict()
    d["_file"] = cal.file
    return d


def batch_settings(
    *,
    mode: str = "auto",
    phases=None,
    free_scale: bool = False,
    pixel_size=None,
    signal=None,
    frame="mean",
    calibration=None,
    lattice_options: Mapping | None = None,
    particle_options: Mapping | None = None,
    analyzers: Mapping[str, Callable] | None = None,
    figures: bool = True,
) -> dict:
    """The settings that decide a file's results (JSON-ready; their digest is stored in each record).

    Examples
    --------
    >>> s = batch_settings(mode="lattice", pixel_size="0.21A")
    >>> s["mode"], s["pixel_size_nm"]
    ('lattice', [0.021, 0.021])
    """
    if mode not in MODES:
        raise LatticefitError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    ps = pixel_size_pair_nm(pixel_size) if pixel_size is not None else None
    names = {a: _callable_name(fn) for a, fn in sorted((analyzers or {}).items())}
    return {
        "mode": mode,
        "phases": _phase_entries(phases),
        "free_scale": bool(free_scale),
        "pixel_size_nm": [round(v, 12) for v in ps] if ps else None,
        "signal": signal,
        "frame": frame,
        "lattice_options": dict(lattice_options or {}),
        # a lattice calibration applied to every image (its full record: the digest changes with it)
        **({"calibration": _calibration_record(calibration)} if calibration is not None else {}),
        "particle_options": dict(particle_options or {}),
        "analyzers": names or "default",
        # only when off, so that the digest of a default run does not change
        **({"figures": False} if not figures else {}),
        "latticefit_version": __version__,
    }


def settings_digest(settings: Mapping) -> str:
    """blake2b digest of the settings (canonical JSON)."""
    text = dumps(settings, indent=None)
    text = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


# ----------------------------------------------------------------------------- resume
def _record_reusable(rec: dict | None, found: FoundFile, digest: str, out: Path) -> bool:
    """A record is reused when the file's bytes and the settings are unchanged and its outputs exist."""
    if not rec or rec.get("settings_hash") != digest or rec.get("retry_on_resume"):
        return False
    try:
        if rec.get("content_hash") != file_content_hash(content_files(found.path)):
            return False
    except OSError:
        return False
    for row in rec.get("rows") or []:
        for key in ("json", "figure"):
            if row.get(key) and not (out / row[key]).is_file():
                return False
    return True


def _remove_stale_temporaries(out: Path) -> None:
    """Delete the ``.<name>.<random>.tmp`` files a killed run left under ``out``."""
    for dirpath, _dirs, files in os.walk(out):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    os.unlink(os.path.join(dirpath, name))
                except OSError:
                    pass


# ----------------------------------------------------------------------------- outputs
def _write_outputs(out: Path, outputs: Mapping[str, Any]) -> None:
    for rel, data in outputs.items():
        dest = out / rel
        if isinstance(data, (bytes, bytearray)):
            atomic_write_bytes(dest, bytes(data))
        else:
            atomic_write_text(dest, str(data))


def _normalise(record: dict) -> dict:
    """The record as it reads back from its JSON file (so a resumed run builds identical tables)."""
    return json.loads(dumps(record, indent=None))


def failed_files(summary: pd.DataFrame) -> list[str]:
    """Files with at least one row of status ``'error'`` in a batch summary."""
    if summary.empty:
        return []
    return sorted(set(summary.loc[summary["status"] == "error", "file"]))


def _write_all(out: Path, records: dict, skipped: list[dict]) -> dict[str, pd.DataFrame]:
    from ._html import write_index_html

    tables = build_tables(list(records.values()), skipped)
    write_tables(out, tables)
    write_index_html(out / "index.html", tables["summary"], title=f"latticefit batch: {out.name}")
    return tables


# ----------------------------------------------------------------------------- run
def run(
    folder,
    out,
    *,
    recursive: bool = False,
    mode: str = "auto",
    jobs: int | None = None,
    scheduler=None,
    resume: bool = False,
    phases=None,
    free_scale: bool = False,
    pattern=None,
    pixel_size=None,
    signal=None,
    frame="mean",
    calibration=None,
    lattice_options: Mapping | None = None,
    particle_options: Mapping | None = None,
    analyzers: Mapping[str, Callable] | None = None,
    progress: bool | None = None,
    flush_interval_s: float = 5.0,
    figures: bool = True,
) -> pd.DataFrame:
    """Analyse every supported file of a folder; write per-file results, figures, tables and a page.

    Parameters
    ----------
    folder : path
        Folder of microscope exports.
    out : path
        Output folder (created; may lie inside ``folder``, it is not scanned).
    recursive : bool
        Also process sub-folders (outputs mirror the tree).
    mode : {'auto', 'lattice', 'particles', 'both'}
        Which analysis each image gets; ``'auto'`` decides per image from its
        acquisition mode (HAADF/STEM: particles, or lattice instead when the
        image resolves a lattice, whose bright columns are no particles; TEM:
        lattice) or, without one, from its periodicity (see :func:`choose_analysis`).
    jobs : int, optional
        Worker processes (default: every core this process may use). ``1``
        runs in this process.
    scheduler : str or distributed.Client, optional
        Run on dask.distributed instead: ``'tcp://host:8786'``, ``'local'``
        (a LocalCluster of ``jobs`` single-threaded worker processes) or a Client.
        Needs ``pip install 'latticefit[dask]'``; the workers must see ``folder``
        at the same path.
    resume : bool
        Reuse the results of files already finished by an earlier run into
        ``out`` (same file bytes, same settings); redo only the others.
        Without it, earlier records in ``out`` are discarded.
    phases : list of str, optional
        Phases (names or CIF files) to index lattice spots against.
    free_scale : bool
        Index with a free calibration factor (0.85-1.15, see
        :func:`latticefit.indexing.index_spots`): for images whose pixel size
        is a few percent off. The implied factor is in ``scale_factor`` ±
        ``scale_factor_err``. Needs ``phases``.
    calibration : Calibration, dict or path to a calibration JSON, optional
        A lattice calibration (:mod:`latticefit.calibration`) applied to every image when it is
        read: lengths in corrected nm, errors including the calibration's. Valid for images taken
        at the same magnification and scan settings.
    pattern : str or list of str, optional
        Only files matching these globs (see :func:`discover_files`).
    pixel_size : float, str or (float, float), optional
        Calibration override for every file (nm for a bare number, or ``'0.21A'``).
    signal : str, optional
        Only this signal/detector of multi-signal files (default: every 2-D image).
    frame : int, 'mean' or 'sum'
        How a 3-D stack becomes one image (default: the mean of the frames).
    lattice_options, particle_options : dict, optional
        Keyword arguments passed to :func:`latticefit.lattice.measure_lattice`
        and :func:`latticefit.particles.find_particles`.
    analyzers : dict, optional
        ``{'lattice': fn, 'particles': fn}`` replacing the built-in analyses;
        ``fn(micrograph, settings) -> AnalysisOutcome``, a module-level function
        so that it pickles to worker processes.
    progress : bool, optional
        Show a tqdm progress bar on stderr (default: when stderr is a terminal).
    flush_interval_s : float
        The tables and page are rewritten at most this often while the run goes
        on (and always at the end).
    figures : bool
        Draw the per-file figures (False: numbers only, ``latticefit batch --no-figures``; the page
        then has no thumbnails).

    Returns
    -------
    DataFrame
        The summary (as written to ``out/summary.csv``): one row per file,
        signal and analysis; ``status`` is ``'ok'``, ``'error'`` or ``'skipped'``.

    Raises
    ------
    LatticefitError
        Missing folder, bad mode/jobs, dask missing or unreachable scheduler.

    Examples
    --------
    >>> summary = run("session_2024-05-02", "results", recursive=True, jobs=2)  # doctest: +SKIP
    >>> summary.groupby("analysis")["status"].value_counts()  # doctest: +SKIP
    """
    folder = Path(folder)
    out = Path(out)
    if jobs is None:
        jobs = default_jobs()
    try:
        jobs = operator.index(jobs) if not isinstance(jobs, bool) else 0
    except TypeError:
        jobs = 0
    if jobs < 1:
        raise LatticefitError("jobs must be a positive integer")
    if free_scale and not phases:
        raise LatticefitError("free_scale needs phases to index against (--phase NAME)")
    settings = batch_settings(
        mode=mode,
        phases=phases,
        free_scale=free_scale,
        pixel_size=pixel_size,
        signal=signal,
        frame=frame,
        calibration=calibration,
        lattice_options=lattice_options,
        particle_options=particle_options,
        analyzers=analyzers,
        figures=figures,
    )
    if folder.exists() and out.resolve() == folder.resolve():
        raise LatticefitError("the output folder must not be the input folder", str(out))
    found = discover_files(folder, recursive=recursive, pattern=pattern, exclude=[out])
    digest = settings_digest(settings)

    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".latticefit").mkdir(exist_ok=True)
    except OSError as e:
        raise LatticefitError(f"cannot create the output folder: {e.strerror or e}", str(out)) from None
    with exclusive_lock(out / ".latticefit" / "lock"):
        return _run_in(
            out,
            found,
            settings,
            digest,
            resume=resume,
            analyzers=analyzers,
            progress=progress,
            scheduler=scheduler,
            jobs=jobs,
            flush_interval_s=flush_interval_s,
        )


@contextlib.contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive, non-blocking lock on ``path`` (holding this process's pid) while the block runs.

    A second batch on the same output folder would mix its rows and settings with this one's, so it is
    refused with an error naming the process that holds the folder. The lock is the kernel's
    (``flock``): it goes away with the process, even after SIGKILL, so a killed run never leaves a stale lock.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise LatticefitError(
            f"cannot write in the output folder: {e.strerror or e}", str(path.parent.parent)
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise LatticefitError(
                f"another latticefit batch (pid {holder}) is writing to this output folder; "
                "wait for it or choose another -o",
                str(path.parent.parent),
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _run_in(out: Path, found, settings, digest, *, resume, analyzers, progress, scheduler, jobs, flush_interval_s):
    """The locked part of :func:`run`: records, tasks, execution and tables."""
    store = RecordStore(out)
    if resume:
        _remove_stale_temporaries(out)
    else:
        store.clear()
    atomic_write_text(out / ".latticefit" / "settings.json", dumps(settings) + "\n")

    skipped = [{"file": f.relpath, "note": f.note} for f in found if not f.supported]
    records: dict[str, dict] = {}
    todo: list[FileTask] = []
    for f in found:
        if not f.supported:
            continue
        if resume:
            rec = store.load(f.relpath)
            if _record_reusable(rec, f, digest, out):
                records[f.relpath] = rec
                continue
        todo.append(
            FileTask(str(f.path.resolve()), f.relpath, settings, digest, dict(analyzers) if analyzers else None)
        )

    if progress is None:
        progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
    _write_all(out, records, skipped)
    if todo:
        if scheduler is not None:
            results = run_dask(process_file, todo, scheduler, jobs)
        elif min(jobs, len(todo)) == 1:
            results = run_serial(process_file, todo)
        else:
            results = run_process_pool(process_file, todo, min(jobs, len(todo)))
        _consume(
            results, out, store, records, skipped, total=len(todo), progress=progress, flush_interval_s=flush_interval_s
        )
    tables = _write_all(out, records, skipped)
    return tables["summary"]


def _consume(
    results: Iterable,
    out: Path,
    store: RecordStore,
    records: dict,
    skipped: list,
    *,
    total: int,
    progress: bool,
    flush_interval_s: float,
) -> None:
    """Write each finished file's outputs, then its record; rebuild the tables now and then."""
    from tqdm import tqdm

    n_failed = 0
    last_flush = time.monotonic()
    gap = flush_interval_s  # grows with the cost of a rebuild, so that huge runs do not spend their time on it
    bar = tqdm(
        total=total,
        disable=not progress,
        file=sys.stderr,
        unit="file",
        desc="latticefit batch",
        dynamic_ncols=True,
        leave=True,
    )
    try:
        for _task, rec in results:
            outputs = rec.pop("_outputs", {}) or {}
            _write_outputs(out, outputs)
            rec = _normalise(rec)
            store.save(rec)  # last: a record means the file's outputs are complete
            records[rec["file"]] = rec
            if rec.get("status") == "error":
                n_failed += 1
                bar.set_postfix(failed=n_failed, refresh=False)
            bar.update(1)
            if time.monotonic() - last_flush >= gap:
                t = time.monotonic()
                _write_all(out, records, skipped)
                last_flush = time.monotonic()
                gap = max(flush_interval_s, 10.0 * (last_flush - t))
    except BaseException:
        # interrupted: keep the tables of what finished (the records are already safe)
        try:
            _write_all(out, records, skipped)
        except Exception:
            pass
        raise
    finally:
        bar.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()
