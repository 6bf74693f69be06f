"""Results saved with their provenance, and re-opened.

:func:`save_result` writes a lattice measurement, a region comparison or a particle analysis as

- ``.hspy`` / ``.zspy``: the analysed image as a calibrated Signal2D whose ``metadata.latticefit`` holds the
  results (spots, angles, basis or the particle table, summary, labels), the provenance, and the result's
  markers (shown by ``signal.plot()``);
- ``.json``: ``{"kind", "result", "provenance"}``;
- ``.csv``: the table (spots, matches or particles) after one ``# latticefit-provenance {json}`` line
  (``pandas.read_csv(path, comment="#")`` reads the table).

The provenance block names the latticefit (and numpy, hyperspy) version, the time, the source file with
its sha256, the calibration used (pixel size, affine matrix and its origin) and the parameters of the call.
:func:`load_result` re-opens any of them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import LatticefitError
from ..micrograph import Micrograph, as_micrograph
from ..serialize import atomic_write_text, dumps, to_jsonable

__all__ = ["provenance", "save_result", "load_result", "SavedResult", "file_sha256"]

FORMAT_VERSION = 1


def file_sha256(path) -> str | None:
    """sha256 (hex) of a file's bytes, or None when it cannot be read.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> file_sha256(f.name)[:16]
    'ba7816bf8f01cfea'
    >>> os.unlink(f.name)
    """
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except (OSError, TypeError):
        return None


def _kind(result) -> str:
    if hasattr(result, "regions") and hasattr(result, "hrtem"):
        return "lattice_report"
    if hasattr(result, "spots") and hasattr(result, "basis"):
        return "lattice"
    if hasattr(result, "a") and hasattr(result, "b") and hasattr(result, "summary"):
        return "comparison"
    if hasattr(result, "table") and hasattr(result, "labels"):
        return "particles"
    raise LatticefitError(
        f"cannot save a {type(result).__name__}: give a LatticeResult, RegionComparison or ParticleResult"
    )


def _source_of(result, image) -> str | None:
    """The analysed file: the result's source, else the image's; a signal hyperspy loaded knows its folder."""
    src = getattr(result, "source", None) or getattr(getattr(result, "a", None), "source", None)
    if src is None and hasattr(result, "hrtem"):
        src = result.hrtem.source
    if src is None and image is not None:
        src = getattr(image, "source", None)
        if src is None and hasattr(image, "metadata"):
            src = image.metadata.get_item("General.original_filename")
    tp = getattr(image, "tmp_parameters", None)
    if tp is not None and tp.has_item("folder") and tp.has_item("filename"):
        loaded = Path(tp.folder) / f"{tp.filename}{tp.get_item('extension') or ''}"
        if (
            loaded.is_file()
            and (src is None or not Path(src).is_file())
            and (src is None or Path(src).name == loaded.name)
        ):
            src = str(loaded)
    return None if src is None else str(src)


def provenance(result, image=None, *, parameters: dict | None = None) -> dict:
    """Where a result comes from: versions, time, source file and its sha256, calibration, parameters.

    Parameters
    ----------
    result : LatticeResult, RegionComparison or ParticleResult
    image : Micrograph or Signal2D, optional
        The analysed image (its calibration and affine correction are recorded).
    parameters : dict or argparse.Namespace, optional
        The call's parameters (e.g. ``{"roi": ..., "d_range_angstrom": ...}``, or a command line's parsed
        arguments); without them the ones the result records (its region, method, settings).

    Returns
    -------
    dict
        ``latticefit_version``, ``created_utc``, ``kind``, ``source`` (``file``, ``sha256``, ``size_bytes``),
        ``calibration`` (``pixel_size_nm``, ``affine_nm_per_px``, ``info``), ``parameters``, ``environment``.

    Examples
    --------
    >>> from latticefit import synth
    >>> from latticefit.lattice import measure_lattice
    >>> mg, _ = synth.perovskite_111(shape=(128, 128), noise_sigma=0.2, seed=1)
    >>> p = provenance(measure_lattice(mg, systematic="none"), mg)
    >>> p["kind"], p["calibration"]["pixel_size_nm"], p["source"]["sha256"] is None
    ('lattice', [0.025, 0.025], True)
    """
    import hyperspy

    kind = _kind(result)
    if parameters is not None and not isinstance(parameters, dict):  # argparse.Namespace
        parameters = {k: v for k, v in vars(parameters).items() if not callable(v)}
    if image is None and kind == "lattice_report":
        image = result.hrtem
    src = _source_of(result, image)
    path = Path(src) if src else None
    exists = path is not None and path.is_file()
    mg = None
    if image is not None:
        try:
            mg = as_micrograph(image)
        except LatticefitError:
            mg = None
    ps = getattr(result, "pixel_size_nm", None) or getattr(getattr(result, "a", None), "pixel_size_nm", None)
    if ps is None and mg is not None:
        ps = mg.pixel_size_nm
    cal = {"pixel_size_nm": [float(v) for v in ps] if ps is not None else None, "affine_nm_per_px": None, "info": None}
    if mg is not None and mg.affine_nm_per_px is not None:
        cal["affine_nm_per_px"] = np.asarray(mg.affine_nm_per_px).tolist()
        cal["info"] = mg.calibration_info
    if parameters is None:
        if kind == "lattice":
            parameters = {"roi": result.roi, "method": result.info}
        elif kind == "lattice_report":
            parameters = {
                "regions": {role: reg.choice.to_dict() for role, reg in result.regions.items()},
                "phases": [getattr(p, "name", str(p)) for p in result.phases],
            }
        elif kind == "comparison":
            parameters = {
                "roi_a": result.a.roi,
                "roi_b": result.b.roi,
                "labels": list(result.labels),
                "z_threshold": result.z_threshold,
                "method": result.a.info,
            }
        else:
            parameters = {"settings": result.settings}
    return to_jsonable(
        {
            "latticefit_version": __version__,
            "format_version": FORMAT_VERSION,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "kind": kind,
            "source": {
                "file": src,
                "sha256": file_sha256(path) if exists else None,
                "size_bytes": path.stat().st_size if exists else None,
            },
            "other_sources": _other_sources(result, kind),
            "calibration": cal,
            "parameters": parameters,
            "environment": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "pandas": pd.__version__,
                "hyperspy": hyperspy.__version__,
            },
        }
    )


def _other_sources(result, kind) -> list:
    """The HAADF of a lattice report (file and sha256)."""
    if kind != "lattice_report" or result.haadf is None or not result.haadf.source:
        return []
    p = Path(result.haadf.source)
    return [{"role": "haadf", "file": str(p), "sha256": file_sha256(p) if p.is_file() else None}]


# ------------------------------------------------------------------ (de)serialising results
def _frame(df: pd.DataFrame) -> dict:
    return {
        "columns": list(df.columns),
        "dtypes": {c: str(t) for c, t in df.dtypes.items()},
        "data": to_jsonable(df.astype(object).where(df.notna(), None).to_dict(orient="list")),
    }


def _unframe(d: dict) -> pd.DataFrame:
    df = pd.DataFrame({c: d["data"][c] for c in d["columns"]}, columns=d["columns"])
    for c, t in d["dtypes"].items():
        if t in ("object", "str", "string"):
            continue
        try:
            df[c] = df[c].astype(t)
        except (TypeError, ValueError):  # e.g. None in an int column: keep what pandas made of it
            pass
    return df


def _lattice_record(r) -> dict:
    return {
        "spots": _frame(r.spots),
        "angles": _frame(r.angles),
        "basis": r.basis,
        "pixel_size_nm": list(r.pixel_size_nm),
        "roi": r.roi,
        "source": r.source,
        "region_shape": list(r.region_shape),
        "warnings": list(r.warnings),
        "info": r.info,
    }


def _lattice_from(d: dict):
    from ..lattice import LatticeResult

    return LatticeResult(
        spots=_unframe(d["spots"]),
        angles=_unframe(d["angles"]),
        basis=d["basis"],
        pixel_size_nm=tuple(d["pixel_size_nm"]),
        roi=d["roi"],
        source=d["source"],
        region_shape=tuple(d["region_shape"]),
        warnings=list(d["warnings"]),
        info=d["info"],
    )


def _record(result, kind: str) -> dict:
    if kind == "lattice":
        return _lattice_record(result)
    if kind == "comparison":
        return {
            "a": _lattice_record(result.a),
            "b": _lattice_record(result.b),
            "table": _frame(result.table),
            "summary": result.summary,
            "labels": list(result.labels),
            "z_threshold": result.z_threshold,
            "warnings": list(result.warnings),
        }
    return {
        "table": _frame(result.table),
        "summary": result.summary,
        "pixel_size_nm": list(result.pixel_size_nm),
        "source": result.source,
        "settings": result.settings,
        "labels_shape": list(result.labels.shape),
    }


def _from_record(kind: str, d: dict, labels=None):
    if kind == "lattice":
        return _lattice_from(d)
    if kind == "comparison":
        from ..lattice import RegionComparison

        return RegionComparison(
            a=_lattice_from(d["a"]),
            b=_lattice_from(d["b"]),
            table=_unframe(d["table"]),
            summary=d["summary"],
            labels=tuple(d["labels"]),
            z_threshold=d["z_threshold"],
            warnings=list(d["warnings"]),
        )
    from ..particles import ParticleResult

    if labels is None:
        labels = np.zeros(tuple(d["labels_shape"]), np.int32)
    return ParticleResult(
        table=_unframe(d["table"]),
        summary=d["summary"],
        labels=np.asarray(labels, np.int32),
        pixel_size_nm=tuple(d["pixel_size_nm"]),
        source=d["source"],
        settings=d["settings"],
    )


def _table_of(result, kind):
    return {"lattice": lambda: result.spots, "comparison": lambda: result.table, "particles": lambda: result.table}[
        kind
    ]()


# ------------------------------------------------------------------ save / load
@dataclass
class SavedResult:
    """A result re-opened by :func:`load_result`.

    Attributes
    ----------
    kind : {'lattice', 'comparison', 'particles'}
    result : LatticeResult, RegionComparison or ParticleResult
        The error columns are as saved; a lattice result's ``systematic`` model is not (its parts are columns).
    provenance : dict
        See :func:`provenance`.
    image : Micrograph or None
        The analysed image (``.hspy``/``.zspy`` only).
    signal : Signal2D or None
        The saved signal, markers in ``metadata.Markers``.
    """

    kind: str
    result: Any
    provenance: dict
    image: Micrograph | None = None
    signal: Any = field(default=None, repr=False)


def save_result(result, path, image=None, *, parameters: dict | None = None, markers: bool = True) -> Path:
    """Write a result and its provenance to ``.hspy``, ``.zspy`` (the image with the results), ``.json`` or ``.csv``.

    Parameters
    ----------
    result : LatticeResult, RegionComparison or ParticleResult
    path : str or Path
        The extension chooses the format (see the module docstring).
    image : Micrograph, Signal2D or array, optional
        The analysed image; needed for ``.hspy``/``.zspy``.
    parameters : dict, optional
        The call's parameters, recorded in the provenance (see :func:`provenance`).
    markers : bool
        Store the result's markers in the ``.hspy`` (spots are not drawn on the image: FFT markers belong on
        :func:`latticefit.interop.fft_signal`; the regions of a lattice result are drawn instead).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from latticefit import synth
    >>> from latticefit.lattice import measure_lattice
    >>> mg, _ = synth.perovskite_111(shape=(128, 128), noise_sigma=0.2, seed=1)
    >>> res = measure_lattice(mg, systematic="none")
    >>> out = save_result(res, pathlib.Path(tempfile.mkdtemp()) / "res.hspy", mg)
    >>> back = load_result(out)
    >>> back.kind, bool((back.result.spots.d_angstrom == res.spots.d_angstrom).all())
    ('lattice', True)
    """
    path = Path(path)
    kind = _kind(result)
    prov = provenance(result, image, parameters=parameters)
    rec = to_jsonable(_record(result, kind))
    ext = path.suffix.lower()
    if ext == ".json":
        atomic_write_text(path, dumps({"kind": kind, "result": rec, "provenance": prov}))
        return path
    if ext == ".csv":
        table = _table_of(result, kind)
        atomic_write_text(
            path, "# latticefit-provenance " + json.dumps(prov, allow_nan=False) + "\n" + table.to_csv(index=False)
        )
        return path
    if ext not in (".hspy", ".zspy"):
        raise LatticefitError(
            f"output {path}: results are saved as .hspy, .zspy, .json or .csv, got {path.suffix or 'no extension'!r}"
        )
    if image is None:
        raise LatticefitError(f"output {path}: a .hspy/.zspy result holds the analysed image: pass image=")
    from ._hyperspy import image_signal

    s = image_signal(image).deepcopy() if hasattr(image, "axes_manager") else image_signal(image)
    if s.axes_manager.navigation_dimension:
        s = s.inav[0] if s.axes_manager.navigation_size else s
    s.metadata.set_item("latticefit.kind", kind)
    s.metadata.set_item("latticefit.result_json", dumps(rec, indent=None))
    s.metadata.set_item("latticefit.provenance_json", dumps(prov, indent=None))
    _browsable(s, result, kind, prov)
    if kind == "particles":
        s.metadata.set_item("latticefit.labels", np.asarray(result.labels, np.int32))
    if markers:
        _region_or_particle_markers(s, result, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        s.save(str(path), overwrite=True)
    except ImportError as e:
        raise LatticefitError(f"output {path}: writing {ext} needs {e.name or 'zarr'} (pip install zarr)") from None
    except (TypeError, ValueError):  # original metadata hdf5/zarr cannot hold: keep the rest
        s.original_metadata = type(s.original_metadata)({})
        s.save(str(path), overwrite=True)
    return path


def _clean_md(obj):
    """A JSON-ready value with the None entries dropped (hyperspy metadata has no null)."""
    if isinstance(obj, dict):
        return {k: _clean_md(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        if obj and all(isinstance(v, (int, float, bool)) for v in obj):
            return np.asarray(obj)
        if any(isinstance(v, (int, float)) for v in obj) and all(v is None or isinstance(v, (int, float)) for v in obj):
            return np.array([np.nan if v is None else v for v in obj], float)  # null -> NaN, positions kept
        return [_clean_md(v) for v in obj if v is not None]
    return obj


def _browsable(s, result, kind, prov):
    """Readable copies in ``metadata.latticefit``: tables as column arrays, basis, summary, provenance."""

    def cols(df):
        return {
            c: np.asarray(pd.to_numeric(df[c], errors="coerce"), float) if df[c].dtype != bool else df[c].to_numpy(bool)
            for c in df.columns
        }

    md = {"provenance": _clean_md(prov)}
    if kind == "lattice":
        md.update(
            spots=cols(result.spots),
            basis=_clean_md(to_jsonable(result.basis or {})),
            roi=_clean_md(to_jsonable(result.roi or {})),
        )
    elif kind == "comparison":
        md.update(
            matches=cols(result.table),
            summary=_clean_md(to_jsonable(result.summary)),
            spots_a=cols(result.a.spots),
            spots_b=cols(result.b.spots),
            basis_a=_clean_md(to_jsonable(result.a.basis or {})),
            basis_b=_clean_md(to_jsonable(result.b.basis or {})),
        )
    else:
        md.update(
            particles=cols(result.table.select_dtypes(exclude="object")),
            summary=_clean_md(
                to_jsonable({k: v for k, v in result.summary.items() if k not in ("histogram", "notes")})
            ),
        )
    for k, v in md.items():
        s.metadata.set_item(f"latticefit.{k}", v)


def _region_or_particle_markers(s, result, kind):
    from ._hyperspy import _hs, add_markers

    if kind == "particles":
        add_markers(s, result)
        return
    hs = _hs()
    ax, ay = s.axes_manager.signal_axes
    regions = [result.roi] if kind == "lattice" else [result.a.roi, result.b.roi]
    colours = ["#0072B2", "#D55E00"]
    for r, c in zip(regions, colours):
        if not r:
            continue
        if r.get("type") == "rect":
            m = hs.plot.markers.Rectangles(
                offsets=[[(r["x"] + r["w"] / 2) * ax.scale + ax.offset, (r["y"] + r["h"] / 2) * ay.scale + ay.offset]],
                widths=[r["w"] * ax.scale],
                heights=[r["h"] * ay.scale],
                edgecolor=c,
                facecolors="none",
                linewidth=1.5,
            )
        elif r.get("type") == "circle":
            m = hs.plot.markers.Circles(
                offsets=[[r["x"] * ax.scale + ax.offset, r["y"] * ay.scale + ay.offset]],
                sizes=[2 * r["r"] * ax.scale],
                edgecolor=c,
                facecolors="none",
                linewidth=1.5,
            )
        else:
            continue
        s.add_marker(m, permanent=True, plot_marker=False)


def load_result(path) -> SavedResult:
    """Re-open a result written by :func:`save_result` (``.hspy``, ``.zspy``, ``.json`` or ``.csv``).

    A ``.csv`` gives back its table (the ``result`` is the DataFrame) and its provenance.

    Raises
    ------
    LatticefitError
        When the file holds no latticefit result.

    Examples
    --------
    See :func:`save_result`.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".json":
        d = json.loads(path.read_text(encoding="utf-8"))
        if "kind" not in d or "result" not in d:
            raise LatticefitError("not a latticefit result file (no 'kind'/'result')", str(path))
        return SavedResult(
            kind=d["kind"], result=_from_record(d["kind"], d["result"]), provenance=d.get("provenance", {})
        )
    if ext == ".csv":
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        if not first.startswith("# latticefit-provenance "):
            raise LatticefitError("not a latticefit result table (no provenance line)", str(path))
        prov = json.loads(first[len("# latticefit-provenance ") :])
        return SavedResult(kind=prov.get("kind", "table"), result=pd.read_csv(path, comment="#"), provenance=prov)
    import hyperspy.api as hs

    s = hs.load(str(path), file_format="HSPY" if ext in (".hspy", ".hdf5") else None)
    md = s.metadata
    if not md.has_item("latticefit.result_json"):
        raise LatticefitError("not a latticefit result (no metadata.latticefit)", str(path))
    kind = md.get_item("latticefit.kind")
    labels = md.get_item("latticefit.labels") if kind == "particles" else None
    result = _from_record(kind, json.loads(md.get_item("latticefit.result_json")), labels)
    return SavedResult(
        kind=kind,
        result=result,
        provenance=json.loads(md.get_item("latticefit.provenance_json")),
        image=Micrograph.from_signal(s, source=str(path)),
        signal=s,
    )
