"""Part of :mod:`_calibration` (see its docstring): calibration_record."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, replace

import numpy as np

from ..errors import CalibrationError, CalibrationWarning, LatticefitError
from ..micrograph import Micrograph, as_micrograph
from ._indexing import IndexingResult
from ._phases import Phase, as_phase, format_hkl, get_phase

CALIBRATION_SCHEMA_VERSION = 1
#: the assumption under which a calibration made on one image applies to another
VALIDITY = (
    "valid for images taken at the same magnification and scan settings (pixel size, frame size, "
    "dwell time, scan rotation) as the reference image"
)


def _phase(phase) -> Phase:
    return as_phase(phase)


def _roi_dict(roi):
    from ..roi import as_roi

    r = as_roi(roi)
    return None if r is None else r.to_dict()


@dataclass(eq=False)
class Calibration:
    """Pixel size fitted from a region of known structure.

    Attributes
    ----------
    pixel_size_nm, pixel_size_err_nm : (float, float)
        Calibrated pixel size (y, x) and its 1-sigma error, nm.
    scale_factor, scale_factor_err : float
        ``true / file`` pixel size (isotropic, or the mean of y and x when anisotropic).
    scale_factor_yx, scale_factor_yx_err : (float, float)
        Per-axis factors (equal to the isotropic one unless ``anisotropic``).
    file_pixel_size_nm : (float, float)
        Pixel size the file claimed.
    phase : Phase
    zone_axis : (u, v, w)
    anisotropic : bool
    n_spots : int
        Indexed spots the fit used.
    indexing : IndexingResult
        The indexing of the reference region.
    """

    pixel_size_nm: tuple[float, float]
    pixel_size_err_nm: tuple[float, float]
    scale_factor: float
    scale_factor_err: float
    scale_factor_yx: tuple[float, float]
    scale_factor_yx_err: tuple[float, float]
    file_pixel_size_nm: tuple[float, float]
    phase: Phase
    zone_axis: tuple
    anisotropic: bool
    n_spots: int
    indexing: IndexingResult | None = None
    source: str | None = None
    roi: dict | None = None
    lattice_spots: object = None
    #: pixel-to-nm matrix A, ``[x_nm, y_nm] = A @ [x_px, y_px]`` (diagonal unless ``model == 'affine'``)
    matrix_nm_per_px: np.ndarray | None = None
    #: covariance of (A_xx, A_xy, A_yx, A_yy), (nm/px)^2
    matrix_cov: np.ndarray | None = None
    model: str = ""
    anisotropy_percent: float = float("nan")
    anisotropy_err_percent: float = float("nan")
    shear_deg: float = 0.0
    shear_err_deg: float = float("nan")
    rotation_deg: float = float("nan")
    chi2_reduced: float = float("nan")
    #: per reflection after correction: h k l, d_calc_angstrom, d_corrected_angstrom, d_err_angstrom,
    #: residual_percent, angle_residual_deg, z
    residuals: object = None
    #: tile map of the local affine deviation (see :func:`nonlinear_distortion`), or None
    nonlinear: dict | None = None
    image_shape: tuple | None = None
    created_utc: str | None = None
    latticefit_version: str | None = None
    file: str | None = None  # the JSON this calibration was read from

    def __post_init__(self):
        if self.matrix_nm_per_px is None:
            (py, px), (ey, ex) = self.pixel_size_nm, self.pixel_size_err_nm
            self.matrix_nm_per_px = np.diag([float(px), float(py)])
            cov = np.zeros((4, 4))
            cov[0, 0], cov[3, 3] = ex**2, ey**2
            if not self.anisotropic:  # one factor: x and y errors fully correlated
                cov[0, 3] = cov[3, 0] = ex * ey
            self.matrix_cov = cov
        self.matrix_nm_per_px = np.asarray(self.matrix_nm_per_px, float).reshape(2, 2)
        self.matrix_cov = (
            np.zeros((4, 4)) if self.matrix_cov is None else np.asarray(self.matrix_cov, float).reshape(4, 4)
        )
        if not self.model:
            self.model = "anisotropic" if self.anisotropic else "isotropic"
        if not np.isfinite(self.anisotropy_percent):
            ky, kx = self.scale_factor_yx
            eky, ekx = self.scale_factor_yx_err
            self.anisotropy_percent = 100.0 * (kx / ky - 1.0)
            self.anisotropy_err_percent = (
                100.0 * (kx / ky) * math.hypot(ekx / kx, eky / ky) if self.anisotropic else 0.0
            )
        if self.latticefit_version is None:
            from .. import __version__

            self.latticefit_version = __version__

    @property
    def matrix_err_nm_per_px(self) -> np.ndarray:
        """1-sigma errors of the four matrix elements (2x2)."""
        return np.sqrt(np.abs(np.diag(self.matrix_cov))).reshape(2, 2)

    @property
    def nonlinear_rms_percent(self) -> float:
        """Residual non-linear distortion (rms %, noise removed) over the tiles, NaN when not measured."""
        return float("nan") if not self.nonlinear else float(self.nonlinear["rms_percent"])

    def apply(self, micrograph, *, pixel_size=None) -> Micrograph:
        """A copy of ``micrograph`` carrying this calibration (its affine matrix and covariance).

        An image whose nominal pixel size equals the reference file's gets the calibrated pixel
        matrix; an image at another nominal magnification has its own pixel size multiplied by the
        correction of the session (with a :class:`CalibrationWarning`: the calibration is
        ``VALIDITY``). An uncalibrated image gets the calibrated matrix.

        Examples
        --------
        >>> from latticefit.crystal import Calibration
        >>> import numpy as np
        >>> from latticefit.micrograph import Micrograph
        >>> from latticefit.crystal import get_phase
        >>> cal = Calibration((0.019, 0.019), (1e-5, 1e-5), 0.95, 1e-3, (0.95, 0.95), (1e-3, 1e-3),
        ...                   (0.02, 0.02), get_phase("SrTiO3"), (0, 0, 1), False, 4)
        >>> cal.apply(Micrograph(np.zeros((64, 64)), pixel_size_nm=(0.04, 0.04))).pixel_size_nm
        (0.038, 0.038)
        """
        mg = as_micrograph(micrograph, pixel_size)
        A, cov = self.matrix_nm_per_px, self.matrix_cov
        info = self.summary()
        nominal = mg.pixel_size_nm if mg.affine_nm_per_px is None else None
        if mg.affine_nm_per_px is not None:
            raise CalibrationError(
                "the image already carries a lattice calibration: apply one calibration only", mg.source
            )
        if nominal is not None and not np.allclose(nominal, self.file_pixel_size_nm, rtol=1e-6):
            fy, fx = self.file_pixel_size_nm
            s = np.array([nominal[1] / fx, nominal[0] / fy])
            A = A * s[None, :]
            sv = np.array([s[0], s[1], s[0], s[1]])
            cov = cov * np.outer(sv, sv)
            info["scaled_from_file_pixel_size_nm"] = list(self.file_pixel_size_nm)
            warnings.warn(
                f"{mg.source or 'image'}: calibration{' ' + self.file if self.file else ''} was made at "
                f"{fx:.6g} nm/px and is applied at {nominal[1]:.6g} nm/px (scaled by the ratio); "
                f"a calibration is {VALIDITY}",
                CalibrationWarning,
                stacklevel=2,
            )
        return replace(mg, data=mg.data, affine_nm_per_px=np.array(A), affine_cov=np.array(cov), calibration_info=info)

    def summary(self) -> dict:
        """The short record a calibrated image carries (``Micrograph.calibration_info``)."""
        return {
            "file": self.file,
            "reference_phase": getattr(self.phase, "name", str(self.phase)),
            "zone_axis": list(self.zone_axis),
            "reference_file": self.source,
            "reference_roi": self.roi,
            "model": self.model,
            "matrix_nm_per_px": self.matrix_nm_per_px.tolist(),
            "created_utc": self.created_utc,
            "validity": VALIDITY,
        }

    def to_dict(self) -> dict:
        """The JSON record (``schema_version`` 1; see ``docs/calibration.md``)."""
        from ..serialize import to_jsonable

        ph = self.phase
        res = None if self.residuals is None else to_jsonable(self.residuals.to_dict("records"))
        return to_jsonable(
            {
                "schema_version": CALIBRATION_SCHEMA_VERSION,
                "kind": "latticefit.calibration",
                "validity": VALIDITY,
                "model": self.model,
                "matrix_nm_per_px": self.matrix_nm_per_px.tolist(),
                "matrix_convention": "[x_nm, y_nm] = A @ [x_px, y_px]; x right, y down; g_inv_nm = A^-T g_cycles_per_px",
                "matrix_err_nm_per_px": self.matrix_err_nm_per_px.tolist(),
                "matrix_cov": self.matrix_cov.tolist(),
                "matrix_cov_order": ["A_xx", "A_xy", "A_yx", "A_yy"],
                "anisotropy_percent": self.anisotropy_percent,
                "anisotropy_err_percent": self.anisotropy_err_percent,
                "shear_deg": self.shear_deg,
                "shear_err_deg": self.shear_err_deg,
                "rotation_deg": self.rotation_deg,
                "chi2_reduced": self.chi2_reduced,
                "nonlinear_rms_percent": self.nonlinear_rms_percent,
                "nonlinear": self.nonlinear,
                "residuals": res,
                "image_shape": None if self.image_shape is None else list(self.image_shape),
                "created_utc": self.created_utc,
                "latticefit_version": self.latticefit_version,
                "reference": {
                    "phase": getattr(ph, "name", str(ph)),
                    "space_group": getattr(ph, "space_group", None),
                    "lattice_angstrom": _lattice_of(ph),
                    "zone_axis": list(self.zone_axis),
                },
                "file": self.source,
                "roi": self.roi,
                "phase": getattr(ph, "name", str(ph)),
                "space_group": getattr(ph, "space_group", None),
                "zone_axis": list(self.zone_axis),
                "file_pixel_size_nm": list(self.file_pixel_size_nm),
                "pixel_size_nm": list(self.pixel_size_nm),
                "pixel_size_err_nm": list(self.pixel_size_err_nm),
                "scale_factor": self.scale_factor,
                "scale_factor_err": self.scale_factor_err,
                "scale_factor_yx": list(self.scale_factor_yx),
                "scale_factor_yx_err": list(self.scale_factor_yx_err),
                "anisotropic": self.anisotropic,
                "n_spots": self.n_spots,
            }
        )

    def to_json(self, path) -> None:
        """Write :meth:`to_dict` to ``path`` (read it back with :func:`load_calibration`)."""
        from ..serialize import write_json

        write_json(self.to_dict(), str(path))

    @classmethod
    def from_dict(cls, d: dict, *, file: str | None = None) -> Calibration:
        """Rebuild a calibration from :meth:`to_dict` (raises :class:`CalibrationError` on a bad record)."""
        import pandas as pd

        try:
            if not isinstance(d, dict) or d.get("kind", "latticefit.calibration") != "latticefit.calibration":
                raise ValueError("not a latticefit calibration record")
            ver = d.get("schema_version")
            if ver != CALIBRATION_SCHEMA_VERSION:
                raise ValueError(f"schema_version {ver!r} is not supported (expected {CALIBRATION_SCHEMA_VERSION})")
            A = np.asarray(d["matrix_nm_per_px"], float).reshape(2, 2)
            cov = np.asarray(d["matrix_cov"], float).reshape(4, 4)
            if not (np.all(np.isfinite(A)) and abs(np.linalg.det(A)) > 0 and np.all(np.isfinite(cov))):
                raise ValueError("matrix_nm_per_px must be a finite invertible 2x2 matrix")
            name = d.get("phase") or (d.get("reference") or {}).get("phase")
            if not isinstance(name, str):
                raise KeyError("phase")
            try:
                phase = get_phase(name)
            except LatticefitError:  # a CIF phase (not built in): keep its name
                phase = str(name)
            res = d.get("residuals")
            return cls(
                pixel_size_nm=tuple(float(v) for v in d["pixel_size_nm"]),
                pixel_size_err_nm=tuple(float(v) for v in d["pixel_size_err_nm"]),
                scale_factor=float(d["scale_factor"]),
                scale_factor_err=float(d["scale_factor_err"]),
                scale_factor_yx=tuple(float(v) for v in d["scale_factor_yx"]),
                scale_factor_yx_err=tuple(float(v) for v in d["scale_factor_yx_err"]),
                file_pixel_size_nm=tuple(float(v) for v in d["file_pixel_size_nm"]),
                phase=phase,
                zone_axis=tuple(int(v) for v in d["zone_axis"]),
                anisotropic=bool(d.get("anisotropic", True)),
                n_spots=int(d.get("n_spots", 0)),
                source=d.get("file"),
                roi=d.get("roi"),
                matrix_nm_per_px=A,
                matrix_cov=cov,
                model=str(d.get("model", "affine")),
                anisotropy_percent=_num(d.get("anisotropy_percent")),
                anisotropy_err_percent=_num(d.get("anisotropy_err_percent")),
                shear_deg=_num(d.get("shear_deg")),
                shear_err_deg=_num(d.get("shear_err_deg")),
                rotation_deg=_num(d.get("rotation_deg")),
                chi2_reduced=_num(d.get("chi2_reduced")),
                residuals=None if res is None else pd.DataFrame(res),
                nonlinear=d.get("nonlinear"),
                image_shape=None if d.get("image_shape") is None else tuple(d["image_shape"]),
                created_utc=d.get("created_utc"),
                latticefit_version=d.get("latticefit_version"),
                file=file,
            )
        except LatticefitError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            what = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            raise CalibrationError(f"not a valid calibration file: {what}", file) from None

    def describe(self) -> str:
        py, px = self.pixel_size_nm
        ey, ex = self.pixel_size_err_nm
        za = "[" + " ".join(str(v) for v in self.zone_axis) + "]"
        label = getattr(self.phase, "label", str(self.phase))
        text = (
            f"{label} {za} from {self.n_spots} spots: pixel size y {py:.6g} ± {ey:.2g} nm, "
            f"x {px:.6g} ± {ex:.2g} nm; scale factor (true/file) {self.scale_factor:.5f} ± "
            f"{self.scale_factor_err:.5f}"
        )
        if self.model == "affine":
            text += (
                f"; anisotropy {self.anisotropy_percent:+.3f} ± {self.anisotropy_err_percent:.3f} %, "
                f"shear {self.shear_deg:+.3f} ± {self.shear_err_deg:.3f}° (± are 1 SD)"
            )
        return text

    @property
    def table(self):
        """The per-reflection residuals after correction as a pandas DataFrame (empty without a fit)."""
        import pandas as pd

        return self.residuals if self.residuals is not None else pd.DataFrame()

    def __str__(self) -> str:
        """The calibration table: scale factors, anisotropy, shear, matrix and per-reflection residuals."""
        ky, kx = self.scale_factor_yx
        eky, ekx = self.scale_factor_yx_err
        A, E = self.matrix_nm_per_px, self.matrix_err_nm_per_px
        za = "[" + " ".join(str(v) for v in self.zone_axis) + "]"
        where = ("" if self.source is None else ", " + str(self.source)) + (
            "" if not self.roi else ", region " + json.dumps(self.roi)
        )
        lines = [
            f"reference: {getattr(self.phase, 'label', self.phase)} {za}, {self.n_spots} indexed spots{where}",
            f"model: {self.model}   (± are 1 SD; chi2/dof = {self.chi2_reduced:.2f})",
            f"scale x (true/file)  {kx:.5f} ± {ekx:.5f}",
            f"scale y (true/file)  {ky:.5f} ± {eky:.5f}",
            f"anisotropy (x/y-1)   {self.anisotropy_percent:+.3f} ± {self.anisotropy_err_percent:.3f} %",
            f"shear                {self.shear_deg:+.3f} ± {self.shear_err_deg:.3f} °",
            (
                f"pixel matrix (nm/px) [[{A[0, 0]:.6g} ± {E[0, 0]:.2g}, {A[0, 1]:.6g} ± {E[0, 1]:.2g}], "
                f"[{A[1, 0]:.6g}, {A[1, 1]:.6g} ± {E[1, 1]:.2g}]]"
            ),
        ]
        if self.nonlinear:
            nl = self.nonlinear
            lines.append(
                f"non-linear distortion {nl['rms_percent']:.3f} % rms over {nl['n_tiles']} tiles "
                f"(raw {nl['raw_rms_percent']:.3f} %, of which noise {nl['noise_rms_percent']:.3f} %)"
            )
        if self.residuals is not None and len(self.residuals):
            lines.append(
                f"{'hkl':>10} {'d_calc (Å)':>10} {'d_corr (Å)':>10} {'± meas':>8} {'resid %':>8} "
                f"{'dangle °':>8} {'z':>6}"
            )
            for r in self.residuals.to_dict("records"):
                lines.append(
                    f"{format_hkl((r['h'], r['k'], r['l'])):>10} {r['d_calc_angstrom']:10.4f} "
                    f"{r['d_corrected_angstrom']:10.4f} {r['d_err_angstrom']:8.4f} "
                    f"{r['residual_percent']:+8.3f} {r['angle_residual_deg']:+8.3f} {r['z']:+6.2f}"
                )
        lines.append(f"assumption: {VALIDITY}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Calibration({self.describe()})"


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _lattice_of(phase):
    """[a, b, c, alpha, beta, gamma] (Å, deg) of a phase (None for a phase known by name only)."""
    try:
        return [float(v) for v in (phase.a, phase.b, phase.c, phase.alpha, phase.beta, phase.gamma)]
    except AttributeError:
        return None


def load_calibration(path) -> Calibration:
    """Read a calibration JSON written by :meth:`Calibration.to_json` (``latticefit calibrate -o``).

    Raises
    ------
    CalibrationError
        One line naming the file: missing, not JSON, or not a valid calibration record.
    """
    p = str(path)
    try:
        with open(p, encoding="utf-8") as fh:
            d = json.load(fh)
    except FileNotFoundError:
        raise CalibrationError("calibration file not found", p) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CalibrationError(f"cannot read the calibration file ({type(e).__name__})", p) from None
    except json.JSONDecodeError as e:
        raise CalibrationError(f"not a valid calibration file: not JSON ({e.msg} at line {e.lineno})", p) from None
    return Calibration.from_dict(d, file=p)


def as_calibration(obj) -> Calibration:
    """A :class:`Calibration` from itself, its :meth:`~Calibration.to_dict` record or a JSON path."""
    if isinstance(obj, Calibration):
        return obj
    if isinstance(obj, dict):
        return Calibration.from_dict(obj)
    return load_calibration(obj)
