"""A seeded corpus of hostile inputs and an in-process CLI runner (issue 17).

Used by ``tests/test_fuzz.py`` (a sample, every CI run) and ``benchmarks/bench_fuzz.py`` (the full set).
Each mutant is a small file made from a valid seed image: truncated, with corrupted blocks or header
bytes, renamed to another format, or written fresh with an odd dtype, shape, unit or resolution. The
runner calls ``latticefit.cli.main`` in this process (no interpreter start-up per run) with a time
limit, and :func:`check_run` states what every run must satisfy: one line per error naming the file, no
traceback, no "unexpected" exception, exit 2 where nothing can be measured.
"""

from __future__ import annotations

import contextlib
import io
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the commands every mutant goes through ({f} is the file, {o} an output stem in a scratch folder)
COMMANDS = {
    "info": ["info", "{f}"],
    "lattice": ["lattice", "{f}"],
    "index": ["index", "{f}", "--phase", "MAPbBr3"],
    "particles": ["particles", "{f}"],
    "sizes": ["sizes", "{f}", "-o", "{o}.png"],
    "report": ["report", "{f}", "--phase", "MAPbBr3", "-o", "{o}.png"],
}
#: commands that measure something: on a file with nothing to measure they must exit non-zero
MEASURING = {"lattice", "index", "particles", "sizes", "report"}


@dataclass(frozen=True)
class Mutant:
    """One hostile input: ``path`` and how it was made (``kind``); ``unreadable`` when no command can
    use it and ``blank`` when it holds an image with nothing to measure."""

    path: Path
    kind: str
    unreadable: bool = False
    blank: bool = False


def _imagej(path: Path, data, *, px_nm=0.025, unit="nm", resolution=None):
    import tifffile

    r = 1.0 / px_nm if resolution is None else resolution  # a float or a (numerator, denominator) pair
    imagej = data.dtype.char in "BHhf"  # the dtypes ImageJ TIFF holds; others go as plain TIFF
    tifffile.imwrite(
        path,
        data,
        imagej=imagej,
        resolution=(r, r),
        metadata=({"unit": unit} if unit is not None else {}) if imagej else None,
    )
    return path


def seed_files(folder: Path) -> list[Path]:
    """Small valid images (a perovskite lattice and a dot field, as ImageJ TIFF and .hspy)."""
    import hyperspy.api as hs

    from latticefit.synth import _core as synth

    folder.mkdir(parents=True, exist_ok=True)
    lat = synth.perovskite_111(shape=(128, 128), noise_sigma=0.1, seed=11)[0]
    dots = synth.haadf_dots((128, 128), pixel_size_nm=0.4, diameter_nm=5.0, n_particles=6, n_touching_pairs=0, seed=12)[
        0
    ]
    out = [
        _imagej(folder / "lattice.tif", lat.data, px_nm=lat.pixel_size_nm[1]),
        _imagej(folder / "dots.tif", dots.data.astype(np.uint16), px_nm=dots.pixel_size_nm[1]),
    ]
    s = lat.to_signal()
    s.save(folder / "lattice.hspy", overwrite=True)
    out.append(folder / "lattice.hspy")
    del hs
    return out


def _fresh_arrays(rng) -> list[tuple[str, np.ndarray, bool, bool]]:
    """(kind, array, unreadable, blank): odd dtypes and shapes written as ImageJ/plain TIFF."""
    base = rng.normal(100, 10, (64, 64))
    band = base.copy()
    band[20:30] = np.nan
    return [
        ("int8", base.astype(np.int8), False, False),
        ("float16", base.astype(np.float16), False, False),
        ("bool", base > 100, False, False),
        ("complex", (base + 1j * base).astype(np.complex64), False, True),
        ("row", base[:1].astype(np.float32), False, True),
        ("stack3", np.stack([base, base]).astype(np.float32), False, False),
        ("allnan", np.full((64, 64), np.nan, np.float32), True, False),
        ("constant", np.full((64, 64), 7.0, np.float32), False, True),
        ("zeros", np.zeros((64, 64), np.uint16), False, True),
        ("nanband", band.astype(np.float32), False, False),
        ("inf", np.where(base > 115, np.inf, base).astype(np.float32), False, False),
        ("huge", (base * 1e36).astype(np.float32), False, False),
        ("negative", (-base).astype(np.float32), False, False),
        ("tiny2x2", base[:2, :2].astype(np.float32), False, True),
    ]


def make_corpus(folder: Path, n: int, *, seed: int = 0) -> list[Mutant]:
    """``n`` mutants in ``folder`` (seeded: the same ``n`` and ``seed`` give the same bytes)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    seeds = seed_files(folder / "seeds")
    out: list[Mutant] = []
    for kind, arr, unreadable, blank in _fresh_arrays(rng):
        out.append(Mutant(_imagej(folder / f"fresh_{kind}.tif", arr), f"dtype/shape:{kind}", unreadable, blank))
    # resolutions as TIFF rationals (pixels per unit): zero, the smallest and the largest a tag holds
    units = [
        ("furlong", None),
        ("inch", None),
        ("", None),
        ("nm", (0, 1)),
        ("nm", (1, 2**32 - 1)),
        ("nm", (2**32 - 1, 1)),
    ]
    lat = np.asarray(__import__("tifffile").imread(seeds[0]))
    for i, (unit, res) in enumerate(units):
        p = _imagej(folder / f"unit_{i}.tif", lat, unit=unit, resolution=res)
        out.append(Mutant(p, f"unit:{unit or 'none'}:{res}"))
    (folder / "empty.dm4").write_bytes(b"")
    out.append(Mutant(folder / "empty.dm4", "empty", unreadable=True))
    (folder / "text.emd").write_text("not a microscope file\n")
    out.append(Mutant(folder / "text.emd", "text", unreadable=True))
    k = 0
    while len(out) < n:
        src = seeds[k % len(seeds)]
        raw = src.read_bytes()
        how = ("truncate", "corrupt", "header", "rename")[(k // len(seeds)) % 4]
        k += 1
        if how == "truncate":
            frac = float(rng.choice([0.01, 0.1, 0.5, 0.9, 0.99]))
            data, kind, bad = raw[: max(1, int(len(raw) * frac))], f"truncate:{frac}", frac <= 0.1
        elif how == "corrupt":
            b = bytearray(raw)
            for _ in range(int(rng.integers(1, 6))):
                o = int(rng.integers(0, len(b)))
                b[o : o + int(rng.integers(1, 4096))] = rng.bytes(4096)[: len(b[o : o + 4096])]
            data, kind, bad = bytes(b)[: len(raw)], "corrupt-blocks", False
        elif how == "header":
            b = bytearray(raw)
            for o in rng.integers(0, min(512, len(b)), int(rng.integers(1, 16))):
                b[int(o)] = int(rng.integers(0, 256))
            data, kind, bad = bytes(b), "header-bytes", False
        else:
            ext = str(rng.choice([".dm4", ".dm3", ".emd", ".mrc", ".ser", ".hspy", ".tif"]))
            data, kind, bad = raw, f"rename:{src.suffix}->{ext}", False
        suffix = src.suffix if how != "rename" else ext
        p = folder / f"m{len(out):04d}_{how}{suffix}"
        p.write_bytes(data)
        out.append(Mutant(p, kind, unreadable=bad))
    return out[:n]


class _Timeout(Exception):
    pass


@dataclass
class RunResult:
    """One CLI run: exit code (None on time-out), stderr text and wall time."""

    code: int | None
    stderr: str
    seconds: float


def run_cli(argv: list[str], *, timeout_s: float = 60.0) -> RunResult:
    """``latticefit.cli.main(argv)`` in this process, stdout discarded, stderr captured, time-limited."""
    from latticefit.cli import main

    def alarm(signum, frame):
        raise _Timeout()

    err = io.StringIO()
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = int(e.code or 0) if not isinstance(e.code, str) else 2
    except _Timeout:
        code = None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return RunResult(code, err.getvalue(), time.perf_counter() - t0)


def argv_for(command: str, mutant: Mutant, scratch: Path) -> list[str]:
    stem = str(scratch / f"{mutant.path.stem}_{command}")
    return [a.format(f=str(mutant.path), o=stem) for a in COMMANDS[command]]


def check_run(command: str, mutant: Mutant, res: RunResult) -> list[str]:
    """What is wrong with one run (empty when it behaved): the promises of issue 17."""
    problems = []
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("latticefit: error")]
    if res.code is None:
        problems.append("hang (time limit reached)")
    elif res.code not in (0, 1, 2):
        problems.append(f"exit {res.code}")
    if "Traceback" in res.stderr:
        problems.append("traceback")
    if "unexpected" in res.stderr:
        problems.append("unexpected exception: " + next(ln for ln in res.stderr.splitlines() if "unexpected" in ln))
    if len(errors) > 1:
        problems.append(f"{len(errors)} error lines")
    if any(mutant.path.name not in ln for ln in errors):
        problems.append("error line does not name the file")
    stray = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("latticefit")]
    if stray:
        problems.append(f"stray output: {stray[0][:100]}")
    must_fail = mutant.unreadable or (mutant.blank and command in MEASURING)
    if must_fail and res.code == 0:
        problems.append("exit 0 on an input with nothing to measure")
    return problems
