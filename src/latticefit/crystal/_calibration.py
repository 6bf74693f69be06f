"""Internal calibration against a known phase, and lattice mismatch in absolute Å.

:func:`calibrate` measures the lattice in a region of known structure
(e.g. the perovskite matrix, or a SrTiO3 substrate), indexes it against that
phase with a free scale and returns a :class:`Calibration`: the true pixel
size with its uncertainty and the factor ``scale_factor = true / file`` pixel
size (``g_file = k g_true``, so ``d_true = k d_file``). ``Calibration.apply``
puts the calibration on other images or regions of the same session.

:func:`mismatch` compares a second region (e.g. a quantum dot) with the
reference region of the same image. Each spot of the second region gets an
absolute d-spacing with two errors:

- ``d_err_angstrom``: measurement and calibration errors added in quadrature
  (what an absolute number needs);
- ``mismatch_err_percent``: the error of the ratio ``d_other / d_ref`` to the
  matching reference spot, from the two measurement errors only, because the
  pixel size (and any error in it) is common to both regions and cancels in
  the ratio. This is the error a dot-vs-matrix comparison needs.

``calibrate(..., affine=True)`` fits the full 2x2 pixel-to-nm matrix (x and y scale,
shear; the crystal's rotation is separated out) by weighted least squares over every
indexed spot, with its covariance, the residual of each reflection after correction and
the residual non-linear distortion over tiles of the region. A :class:`Calibration`
is saved with :meth:`Calibration.to_json` and read back with :func:`load_calibration`;
``load(..., calibration=)`` / ``as_micrograph(..., calibration=)`` (CLI ``--calibration``)
apply it when the image is made, so that every length measured on it is corrected and
its error includes the calibration's own uncertainty. A calibration is valid for images
taken at the same magnification and scan settings (see ``docs/calibration.md``).

Examples
--------
>>> from latticefit import synth
>>> mg, truth = synth.cubic_001((256, 256), pixel_size_nm=0.02, noise_sigma=0.3)
>>> cal = calibrate(mg.with_pixel_size(0.021), None, "SrTiO3")      # the file claims 0.021 nm
>>> round(cal.scale_factor, 3), round(cal.pixel_size_nm[0], 4)
(0.952, 0.02)
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, replace

import numpy as np

from .. import _calibration_affine as ca
from ._phases import Phase, format_hkl, get_phase, load_cif
from ..errors import AnalysisError, CalibrationError, CalibrationWarning, LatticefitError
from ._indexing import IndexingResult, index_lattice, spot_uncertainties
from ..micrograph import Micrograph, as_micrograph

__all__ = ["Calibration", "calibrate", "fit_pixel_scale", "MismatchResult", "mismatch", "load_calibration",
           "as_calibration", "nonlinear_distortion", "VALIDITY", "CALIBRATION_SCHEMA_VERSION"]

CALIBRATION_SCHEMA_VERSION = 1
#: the assumption under which a calibration made on one image applies to another
VALIDITY = ("valid for images taken at the same magnification and scan settings (pixel size, frame size, "
            "dwell time, scan rotation) as the reference image")


def _phase(phase) -> Phase:
    if isinstance(phase, Phase):
        return phase
    s = str(phase)
    if s.lower().endswith(".cif"):
        return load_cif(s)
    return get_phase(s)


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
            cov[0, 0], cov[3, 3] = ex ** 2, ey ** 2
            if not self.anisotropic:  # one factor: x and y errors fully correlated
                cov[0, 3] = cov[3, 0] = ex * ey
            self.matrix_cov = cov
        self.matrix_nm_per_px = np.asarray(self.matrix_nm_per_px, float).reshape(2, 2)
        self.matrix_cov = (np.zeros((4, 4)) if self.matrix_cov is None
                           else np.asarray(self.matrix_cov, float).reshape(4, 4))
        if not self.model:
            self.model = "anisotropic" if self.anisotropic else "isotropic"
        if not np.isfinite(self.anisotropy_percent):
            ky, kx = self.scale_factor_yx
            eky, ekx = self.scale_factor_yx_err
            self.anisotropy_percent = 100.0 * (kx / ky - 1.0)
            self.anisotropy_err_percent = 100.0 * (kx / ky) * math.hypot(ekx / kx, eky / ky) if self.anisotropic \
                else 0.0
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
            raise CalibrationError("the image already carries a lattice calibration: apply one calibration only",
                                   mg.source)
        if nominal is not None and not np.allclose(nominal, self.file_pixel_size_nm, rtol=1e-6):
            fy, fx = self.file_pixel_size_nm
            s = np.array([nominal[1] / fx, nominal[0] / fy])
            A = A * s[None, :]
            sv = np.array([s[0], s[1], s[0], s[1]])
            cov = cov * np.outer(sv, sv)
            info["scaled_from_file_pixel_size_nm"] = list(self.file_pixel_size_nm)
            warnings.warn(f"{mg.source or 'image'}: calibration{' ' + self.file if self.file else ''} was made at "
                          f"{fx:.6g} nm/px and is applied at {nominal[1]:.6g} nm/px (scaled by the ratio); "
                          f"a calibration is {VALIDITY}", CalibrationWarning, stacklevel=2)
        return replace(mg, data=mg.data, affine_nm_per_px=np.array(A), affine_cov=np.array(cov),
                       calibration_info=info)

    def summary(self) -> dict:
        """The short record a calibrated image carries (``Micrograph.calibration_info``)."""
        return {"file": self.file, "reference_phase": getattr(self.phase, "name", str(self.phase)),
                "zone_axis": list(self.zone_axis), "reference_file": self.source, "reference_roi": self.roi,
                "model": self.model, "matrix_nm_per_px": self.matrix_nm_per_px.tolist(),
                "created_utc": self.created_utc, "validity": VALIDITY}

    def to_dict(self) -> dict:
        """The JSON record (``schema_version`` 1; see ``docs/calibration.md``)."""
        from ..serialize import to_jsonable

        ph = self.phase
        res = None if self.residuals is None else to_jsonable(self.residuals.to_dict("records"))
        return to_jsonable({
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
            "reference": {"phase": getattr(ph, "name", str(ph)), "space_group": getattr(ph, "space_group", None),
                          "lattice_angstrom": _lattice_of(ph), "zone_axis": list(self.zone_axis)},
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
        })

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
                scale_factor=float(d["scale_factor"]), scale_factor_err=float(d["scale_factor_err"]),
                scale_factor_yx=tuple(float(v) for v in d["scale_factor_yx"]),
                scale_factor_yx_err=tuple(float(v) for v in d["scale_factor_yx_err"]),
                file_pixel_size_nm=tuple(float(v) for v in d["file_pixel_size_nm"]), phase=phase,
                zone_axis=tuple(int(v) for v in d["zone_axis"]), anisotropic=bool(d.get("anisotropic", True)),
                n_spots=int(d.get("n_spots", 0)), source=d.get("file"), roi=d.get("roi"), matrix_nm_per_px=A,
                matrix_cov=cov, model=str(d.get("model", "affine")),
                anisotropy_percent=_num(d.get("anisotropy_percent")),
                anisotropy_err_percent=_num(d.get("anisotropy_err_percent")),
                shear_deg=_num(d.get("shear_deg")), shear_err_deg=_num(d.get("shear_err_deg")),
                rotation_deg=_num(d.get("rotation_deg")), chi2_reduced=_num(d.get("chi2_reduced")),
                residuals=None if res is None else pd.DataFrame(res), nonlinear=d.get("nonlinear"),
                image_shape=None if d.get("image_shape") is None else tuple(d["image_shape"]),
                created_utc=d.get("created_utc"), latticefit_version=d.get("latticefit_version"), file=file)
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
        text = (f"{label} {za} from {self.n_spots} spots: pixel size y {py:.6g} ± {ey:.2g} nm, "
                f"x {px:.6g} ± {ex:.2g} nm; scale factor (true/file) {self.scale_factor:.5f} ± "
                f"{self.scale_factor_err:.5f}")
        if self.model == "affine":
            text += (f"; anisotropy {self.anisotropy_percent:+.3f} ± {self.anisotropy_err_percent:.3f} %, "
                     f"shear {self.shear_deg:+.3f} ± {self.shear_err_deg:.3f}° (± are 1 SD)")
        return text

    def table(self) -> str:
        """The calibration table: scale factors, anisotropy, shear, matrix and per-reflection residuals."""
        ky, kx = self.scale_factor_yx
        eky, ekx = self.scale_factor_yx_err
        A, E = self.matrix_nm_per_px, self.matrix_err_nm_per_px
        za = "[" + " ".join(str(v) for v in self.zone_axis) + "]"
        where = ("" if self.source is None else ", " + str(self.source)) + \
            ("" if not self.roi else ", region " + json.dumps(self.roi))
        lines = [f"reference: {getattr(self.phase, 'label', self.phase)} {za}, {self.n_spots} indexed spots{where}",
                 f"model: {self.model}   (± are 1 SD; chi2/dof = {self.chi2_reduced:.2f})",
                 f"scale x (true/file)  {kx:.5f} ± {ekx:.5f}",
                 f"scale y (true/file)  {ky:.5f} ± {eky:.5f}",
                 f"anisotropy (x/y-1)   {self.anisotropy_percent:+.3f} ± {self.anisotropy_err_percent:.3f} %",
                 f"shear                {self.shear_deg:+.3f} ± {self.shear_err_deg:.3f} °",
                 (f"pixel matrix (nm/px) [[{A[0, 0]:.6g} ± {E[0, 0]:.2g}, {A[0, 1]:.6g} ± {E[0, 1]:.2g}], "
                  f"[{A[1, 0]:.6g}, {A[1, 1]:.6g} ± {E[1, 1]:.2g}]]")]
        if self.nonlinear:
            nl = self.nonlinear
            lines.append(f"non-linear distortion {nl['rms_percent']:.3f} % rms over {nl['n_tiles']} tiles "
                         f"(raw {nl['raw_rms_percent']:.3f} %, of which noise {nl['noise_rms_percent']:.3f} %)")
        if self.residuals is not None and len(self.residuals):
            lines.append(f"{'hkl':>10} {'d_calc (Å)':>10} {'d_corr (Å)':>10} {'± meas':>8} {'resid %':>8} "
                         f"{'dangle °':>8} {'z':>6}")
            for r in self.residuals.to_dict("records"):
                lines.append(f"{format_hkl((r['h'], r['k'], r['l'])):>10} {r['d_calc_angstrom']:10.4f} "
                             f"{r['d_corrected_angstrom']:10.4f} {r['d_err_angstrom']:8.4f} "
                             f"{r['residual_percent']:+8.3f} {r['angle_residual_deg']:+8.3f} {r['z']:+6.2f}")
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


def fit_pixel_scale(g_obs_inv_nm, g_calc_inv_nm, *, sigma_inv_nm=None, anisotropic: bool = False):
    """Fit ``g_obs = diag(kx, ky) R(dtheta) g_calc`` (or ``k R g_calc``) by weighted least squares.

    Parameters
    ----------
    g_obs_inv_nm, g_calc_inv_nm : array (n, 2)
        Observed (file calibration) and predicted (true) reciprocal vectors, same order.
    sigma_inv_nm : array (n,) or (n, 2), optional
        1-sigma errors of the observed components; uniform weights when absent.
    anisotropic : bool
        Separate factors along x and y.

    Returns
    -------
    dict
        ``k_yx`` (ky, kx), ``k_yx_err``, ``k`` and ``k_err`` (isotropic or the mean of the two),
        ``rotation_deg`` and ``chi2_reduced``. Errors are scaled by sqrt(chi2_reduced) when it
        exceeds 1 (residual distortion larger than the stated errors).

    Examples
    --------
    >>> import numpy as np
    >>> gc = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    >>> r = fit_pixel_scale(gc * [1.02, 0.98], gc, anisotropic=True)
    >>> [round(v, 4) for v in r["k_yx"]]
    [0.98, 1.02]
    """
    from scipy.optimize import least_squares

    go = np.asarray(g_obs_inv_nm, float).reshape(-1, 2)
    gc = np.asarray(g_calc_inv_nm, float).reshape(-1, 2)
    n = len(go)
    if n < 1 or (anisotropic and n < 2):
        raise AnalysisError(f"{n} indexed spots are too few to fit a pixel size")
    sig = np.ones((n, 2)) if sigma_inv_nm is None else np.broadcast_to(
        np.asarray(sigma_inv_nm, float).reshape(n, -1), (n, 2)).copy()
    sig = np.where(sig > 0, sig, np.nan)
    if np.all(np.isnan(sig)):
        sig = np.ones((n, 2))
    sig = np.where(np.isnan(sig), np.nanmin(sig), sig)
    k0 = float(np.sum(np.hypot(*go.T)) / np.sum(np.hypot(*gc.T)))
    th0 = float(np.angle(np.sum((go[:, 0] + 1j * go[:, 1]) * np.conj(gc[:, 0] + 1j * gc[:, 1]))))

    def model(p):
        if anisotropic:
            kx, ky, th = p
        else:
            kx = ky = p[0]
            th = p[1]
        c, s = math.cos(th), math.sin(th)
        x = c * gc[:, 0] - s * gc[:, 1]
        y = s * gc[:, 0] + c * gc[:, 1]
        return np.stack([kx * x, ky * y], 1)

    def resid(p):
        return ((model(p) - go) / sig).ravel()

    p0 = [k0, k0, th0] if anisotropic else [k0, th0]
    sol = least_squares(resid, p0, method="lm" if 2 * n > len(p0) else "trf")
    dof = max(2 * n - len(p0), 1)
    chi2r = float(np.sum(sol.fun ** 2) / dof)
    J = sol.jac
    try:
        cov = np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        cov = np.full((len(p0), len(p0)), np.nan)
    if sigma_inv_nm is None:
        cov = cov * chi2r  # unit weights: the scatter is the only error estimate
    elif chi2r > 1:
        cov = cov * chi2r
    err = np.sqrt(np.abs(np.diag(cov)))
    if anisotropic:
        kx, ky, th = sol.x
        ekx, eky = err[0], err[1]
        k = 0.5 * (kx + ky)
        ek = 0.5 * math.sqrt(ekx ** 2 + eky ** 2 + 2 * cov[0, 1])
    else:
        kx = ky = k = sol.x[0]
        ekx = eky = ek = err[0]
        th = sol.x[1]
    return {"k_yx": (float(ky), float(kx)), "k_yx_err": (float(eky), float(ekx)), "k": float(k),
            "k_err": float(ek), "rotation_deg": math.degrees(th), "chi2_reduced": chi2r}


def calibrate(image, roi=None, phase="SrTiO3", *, zone_axis=None, anisotropic: bool = False, affine: bool = False,
              tiles=None, pixel_size=None, d_range_angstrom=None, max_index: int = 3, scale_range=(0.8, 1.25),
              beam_energy_kv: float | None = None) -> Calibration:
    """Calibrate the pixel size (or the full affine pixel matrix) on a region of known structure.

    Measures the lattice in ``roi`` (:func:`latticefit.lattice.measure_lattice`), indexes it against
    ``phase`` with a free scale (optionally at a given ``zone_axis``) and fits the calibration from
    every spot explained by an allowed reflection.

    With ``affine=True`` the model is ``g_file = A_file^-T A^T R g_calc``: the 2x2 pixel-to-nm
    matrix ``A`` (x scale, y scale, shear; upper triangular, the x pixel step along x) and the
    crystal's rotation ``R``, fitted linearly by weighted least squares over every indexed spot
    (each with its 2x2 covariance; errors scaled by sqrt(chi2/dof) when the scatter is
    significantly larger than the errors). The result carries the scale factors, anisotropy and
    shear with their 1-sigma errors, the matrix covariance, the residual of each reflection after
    correction and the non-linear distortion over ``tiles`` of the region.

    Parameters
    ----------
    image : Micrograph, hyperspy Signal2D or 2-D array
        Needs a nominal pixel size (``pixel_size=`` for an array or an uncalibrated file).
    roi : Rect, Circle, Mask or None
        Reference region (None: the whole image).
    phase : str, Phase or path to a CIF
    zone_axis : (u, v, w), optional
        Restrict the indexing to this zone axis (and its symmetry equivalents).
    anisotropic : bool
        Fit separate y and x pixel sizes (no shear).
    affine : bool
        Fit the full affine pixel matrix (scale x, scale y, shear) with its covariance.
    tiles : (int, int), False or None
        Tiles (rows, columns) of the region for the non-linear distortion (affine only); None: 3 x 3
        when each tile keeps >= 128 px, else 2 x 2, else none; False: skip.
    scale_range : (float, float)
        Range searched for ``true / file``; it stays inside (1/sqrt(2), sqrt(2)) because a square net
        scaled by 1/sqrt(2) and turned by 45 deg indexes the same spots ((100) read as (110)).

    Returns
    -------
    Calibration

    Raises
    ------
    CalibrationError
        Without a nominal pixel size.
    AnalysisError
        When the region cannot be indexed as ``phase`` (fewer than 2 allowed spots match, or fewer
        than 3 spots of 2 independent directions for an affine fit).

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, _ = synth.cubic_001((256, 256), pixel_size_nm=0.02, noise_sigma=0.3)
    >>> cal = calibrate(mg.with_pixel_size(0.021), None, "SrTiO3", affine=True, tiles=False)
    >>> round(cal.scale_factor_yx[1], 3), abs(cal.shear_deg) < 0.1
    (0.952, True)
    """
    from ..lattice._measure import measure_lattice

    mg = as_micrograph(image, pixel_size)
    file_ps = mg.require_calibration()
    ph = _phase(phase)
    kw = {} if d_range_angstrom is None else {"d_range_angstrom": d_range_angstrom}
    res = measure_lattice(mg, roi=roi, **kw)
    kv = beam_energy_kv or mg.beam_energy_kv or 200.0
    # an affine distortion of a few % and degrees moves spots beyond the default indexing tolerances
    tol = {"tol_d": 0.05, "tol_angle_deg": 4.0} if affine else {}
    idx = index_lattice(res, [ph], zone_axes=None if zone_axis is None else [tuple(zone_axis)],
                        free_scale=True, scale_range=scale_range, max_index=max_index, beam_energy_kv=kv, **tol)
    best = idx.best
    if best is None or best.n_matched < 2:
        raise AnalysisError(f"the region cannot be indexed as {ph.label}"
                            f"{'' if zone_axis is None else ' along ' + str(list(zone_axis))}: "
                            f"{0 if best is None else best.n_matched} spots match allowed reflections", mg.source)
    spots = best.spots
    ok = (spots["status"] == "allowed").to_numpy()
    go = spots.loc[ok, ["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    gc = spots.loc[ok, ["gx_calc_inv_nm", "gy_calc_inv_nm"]].to_numpy(float)
    common = {"file_pixel_size_nm": tuple(file_ps), "phase": ph, "zone_axis": best.zone_axis,
              "n_spots": int(ok.sum()), "indexing": idx, "source": mg.source, "roi": _roi_dict(roi),
              "lattice_spots": res.spots, "image_shape": tuple(mg.shape), "created_utc": _now()}
    if affine:
        cov = _component_covs(res.spots, ok)
        return _calibrate_affine(mg, roi, go, gc, cov, spots.loc[ok], common, tiles=tiles, measure_kw=kw)
    sig = _component_sigmas(res.spots, ok)
    fit = fit_pixel_scale(go, gc, sigma_inv_nm=sig, anisotropic=anisotropic)
    ky, kx = fit["k_yx"]
    eky, ekx = fit["k_yx_err"]
    return Calibration(
        pixel_size_nm=(file_ps[0] * ky, file_ps[1] * kx),
        pixel_size_err_nm=(file_ps[0] * eky, file_ps[1] * ekx),
        scale_factor=fit["k"], scale_factor_err=fit["k_err"],
        scale_factor_yx=(ky, kx), scale_factor_yx_err=(eky, ekx), anisotropic=bool(anisotropic),
        rotation_deg=fit["rotation_deg"], chi2_reduced=fit["chi2_reduced"], **common)


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _component_covs(spots, ok):
    """Per-spot 2x2 covariance of (gx, gy) (1/nm)^2 from the lattice table, or None."""
    if spots is None or len(spots) != len(ok) or not {"cov_xx", "cov_xy", "cov_yy"} <= set(spots.columns):
        return None
    s = spots.loc[ok]
    c = np.stack([np.stack([s.cov_xx, s.cov_xy], 1), np.stack([s.cov_xy, s.cov_yy], 1)], 1).astype(float)
    if not np.all(np.isfinite(c)) or np.any(np.linalg.det(c) <= 0):
        return None
    return c


def _affine_from_fit(fit: ca.AffineFit, A_file: np.ndarray):
    """Pixel matrix, its covariance, [kx, ky, anisotropy %, shear °] with covariance, rotation, mirror."""
    A, rot, mirror = ca.pixel_matrix_from_reciprocal(fit.M, A_file)

    def to_A(m):
        Mm = m.reshape(2, 2)
        if mirror:  # keep the same branch inside the finite differences
            Mm = Mm @ np.diag([1.0, -1.0])
        return ca._lq_upper(A_file.T @ Mm)[0].ravel()

    _, cov_A = ca.propagate(to_A, fit.M.ravel(), fit.cov_M)
    p, cov_p = ca.propagate(lambda a: ca.affine_parameters(a.reshape(2, 2), A_file), A.ravel(), cov_A)
    return A, cov_A, p, cov_p, rot, mirror


def _calibrate_affine(mg, roi, go, gc, cov, ref_spots, common, *, tiles, measure_kw) -> Calibration:
    n = len(go)
    if n < 3 or _spread_deg(go) < 10.0:
        raise AnalysisError(f"an affine calibration needs >= 3 indexed spots along >= 2 directions, got {n}",
                            mg.source)
    A_file = mg.pixel_matrix_nm
    fit = ca.fit_reciprocal_matrix(go, gc, cov)
    A, cov_A, p, cov_p, rot, _ = _affine_from_fit(fit, A_file)
    ep = np.sqrt(np.abs(np.diag(cov_p)))
    kx, ky = float(p[0]), float(p[1])
    k = 0.5 * (kx + ky)
    ek = 0.5 * math.sqrt(abs(cov_p[0, 0] + cov_p[1, 1] + 2 * cov_p[0, 1]))
    py, px = math.hypot(*A[:, 1]), math.hypot(*A[:, 0])
    residuals = _residual_table(go, gc, cov, fit, A, A_file, ref_spots)
    cal = Calibration(
        pixel_size_nm=(py, px), pixel_size_err_nm=(common["file_pixel_size_nm"][0] * ep[1],
                                                   common["file_pixel_size_nm"][1] * ep[0]),
        scale_factor=k, scale_factor_err=ek, scale_factor_yx=(ky, kx), scale_factor_yx_err=(float(ep[1]), float(ep[0])),
        anisotropic=True, matrix_nm_per_px=A, matrix_cov=cov_A, model="affine", anisotropy_percent=float(p[2]),
        anisotropy_err_percent=float(ep[2]), shear_deg=float(p[3]), shear_err_deg=float(ep[3]), rotation_deg=rot,
        chi2_reduced=fit.chi2 / fit.dof if fit.dof else float("nan"), residuals=residuals, **common)
    if tiles is not False:
        cal.nonlinear = nonlinear_distortion(mg, roi, go, gc, A, tiles=tiles, measure_kw=measure_kw)
    return cal


def _spread_deg(g) -> float:
    """Largest angle (deg, 0-90) between the directions of the vectors g."""
    a = np.arctan2(g[:, 1], g[:, 0])
    d = np.abs(((a[:, None] - a[None, :]) + np.pi / 2) % np.pi - np.pi / 2)
    return float(np.degrees(d.max())) if d.size else 0.0


def _residual_table(go, gc, cov, fit, A, A_file, ref_spots):
    """Each reflection after correction: corrected d against the tabulated d, and its angle residual."""
    import pandas as pd

    T = np.linalg.inv(A).T @ A_file.T  # g_file -> corrected g
    g_cor = go @ T.T
    g_pred = (gc @ fit.M.T) @ T.T  # the model's prediction in corrected units (|g_pred| = |g_calc|)
    d_cor = 10.0 / np.linalg.norm(g_cor, axis=1)
    d_calc = 10.0 / np.linalg.norm(gc, axis=1)
    gn = np.linalg.norm(g_cor, axis=1)
    u = g_cor / gn[:, None]
    if cov is None:
        sig = np.full(len(go), np.nan)
    else:
        cc = np.einsum("ij,njk,lk->nil", T, cov, T)
        sig = np.sqrt(np.einsum("ni,nij,nj->n", u, cc, u)) / gn
    rel = d_cor / d_calc - 1.0
    dang = np.degrees(np.angle((g_cor[:, 0] + 1j * g_cor[:, 1]) / (g_pred[:, 0] + 1j * g_pred[:, 1])))
    return pd.DataFrame({"h": ref_spots["h"].to_numpy(int), "k": ref_spots["k"].to_numpy(int),
                         "l": ref_spots["l"].to_numpy(int), "d_calc_angstrom": d_calc,
                         "d_corrected_angstrom": d_cor, "d_err_angstrom": d_cor * sig,
                         "residual_percent": 100.0 * rel, "angle_residual_deg": dang, "z": rel / sig})


def _tile_grid(box, tiles, min_px: int = 128):
    y0, y1, x0, x1 = box
    H, W = y1 - y0, x1 - x0
    if tiles is None:
        tiles = next(((t, t) for t in (3, 2) if min(H, W) // t >= min_px), None)
        if tiles is None:
            return []
    ny, nx = (int(tiles), int(tiles)) if np.isscalar(tiles) else (int(tiles[0]), int(tiles[1]))
    hs, ws = H // ny, W // nx
    from ..roi import Rect

    return [Rect(x0 + c * ws, y0 + r * hs, ws, hs) for r in range(ny) for c in range(nx)]


def nonlinear_distortion(image, roi, g_file, g_calc, A_global, *, tiles=None, measure_kw=None,
                         match_tolerance: float = 0.03) -> dict | None:
    """Residual non-linear distortion: the local affine calibration of each tile against the global one.

    The region (its bounding box; the whole image for ``roi=None``) is cut into ``tiles``; the
    lattice of each tile is measured, its spots are assigned the reflections of the nearest
    reference spots (``g_file``, ``g_calc``) and its own pixel matrix ``A_t`` is fitted as in
    :func:`calibrate`. The local deviation is the symmetric part ``e`` of ``A_t A^-1 - I``; its
    size per tile is the rms principal strain ``sqrt((e_xx^2 + e_yy^2 + 2 e_xy^2) / 2)``. The
    raw rms over the tiles includes the tiles' own statistical scatter (``noise_rms_percent``,
    from their covariances); ``rms_percent = sqrt(raw^2 - noise^2)`` (0 when below the noise) is
    the distortion a linear correction leaves.

    Returns
    -------
    dict or None
        ``rms_percent``, ``raw_rms_percent``, ``noise_rms_percent``, ``max_percent``, ``n_tiles``,
        ``grid`` and ``tiles`` (per tile: ``x_px``, ``y_px``, ``w_px``, ``h_px``, ``n_spots``,
        ``e_xx_percent``, ``e_yy_percent``, ``e_xy_percent``, ``magnitude_percent``,
        ``magnitude_noise_percent``); None when fewer than 2 tiles could be fitted.
    """
    from ..lattice._measure import measure_lattice
    from ..roi import as_roi

    mg = as_micrograph(image)
    r = as_roi(roi)
    box = (0, mg.shape[0], 0, mg.shape[1])
    if r is not None:
        ys, xs = np.nonzero(r.mask(mg.shape))
        box = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    rects = _tile_grid(box, tiles)
    if len(rects) < 2:
        return None
    A_file = mg.pixel_matrix_nm
    out = []
    for rect in rects:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = measure_lattice(mg, roi=rect, **(measure_kw or {}))
        except LatticefitError:
            continue
        if t.spots is None or len(t.spots) < 3:
            continue
        gt = t.spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
        ct = np.stack([np.stack([t.spots.cov_xx, t.spots.cov_xy], 1),
                       np.stack([t.spots.cov_xy, t.spots.cov_yy], 1)], 1).astype(float)
        rows, calc = [], []
        for i, g in enumerate(gt):
            dist = np.minimum(np.linalg.norm(g_file - g, axis=1), np.linalg.norm(g_file + g, axis=1))
            j = int(np.argmin(dist / np.linalg.norm(g_file, axis=1)))
            if dist[j] / np.linalg.norm(g_file[j]) <= match_tolerance:
                s = 1.0 if np.linalg.norm(g_file[j] - g) <= np.linalg.norm(g_file[j] + g) else -1.0
                rows.append(i)
                calc.append(s * g_calc[j])
        if len(rows) < 3 or _spread_deg(gt[rows]) < 10.0:
            continue
        try:
            fit = ca.fit_reciprocal_matrix(gt[rows], np.array(calc), ct[rows])
            A_t, cov_t, *_ = _affine_from_fit(fit, A_file)
        except np.linalg.LinAlgError:
            continue
        e, cov_e = ca.propagate(lambda a: ca.strain_of(a.reshape(2, 2), A_global), A_t.ravel(), cov_t)
        mag2 = (e[0] ** 2 + e[1] ** 2 + 2 * e[2] ** 2) / 2
        noise2 = (cov_e[0, 0] + cov_e[1, 1] + 2 * cov_e[2, 2]) / 2
        out.append({"x_px": int(rect.x), "y_px": int(rect.y), "w_px": int(rect.w), "h_px": int(rect.h),
                    "n_spots": len(rows), "e_xx_percent": 100 * float(e[0]), "e_yy_percent": 100 * float(e[1]),
                    "e_xy_percent": 100 * float(e[2]), "magnitude_percent": 100 * math.sqrt(mag2),
                    "magnitude_noise_percent": 100 * math.sqrt(max(noise2, 0.0))})
    if len(out) < 2:
        return None
    raw = math.sqrt(float(np.mean([t["magnitude_percent"] ** 2 for t in out])))
    noise = math.sqrt(float(np.mean([t["magnitude_noise_percent"] ** 2 for t in out])))
    return {"rms_percent": math.sqrt(max(raw ** 2 - noise ** 2, 0.0)), "raw_rms_percent": raw,
            "noise_rms_percent": noise, "max_percent": max(t["magnitude_percent"] for t in out),
            "n_tiles": len(out), "n_tiles_tried": len(rects), "tiles": out,
            "definition": "rms over tiles of the rms principal strain of sym(A_tile A_global^-1 - I), "
                          "tile noise removed in quadrature"}


def _component_sigmas(spots, ok):
    """Per-spot 1-sigma errors of gx and gy (1/nm) from the lattice table, or None."""
    if spots is None:
        return None
    s = spots.loc[ok] if len(spots) == len(ok) else None
    if s is None:
        return None
    if {"cov_xx", "cov_yy"} <= set(s.columns):
        sx = np.sqrt(np.abs(s["cov_xx"].to_numpy(float)))
        sy = np.sqrt(np.abs(s["cov_yy"].to_numpy(float)))
        if np.all(np.isfinite(sx)) and np.all(np.isfinite(sy)) and np.all(sx > 0) and np.all(sy > 0):
            return np.stack([sx, sy], 1)
    if "d_err_angstrom" in s.columns:
        g = s[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
        sr, _ = spot_uncertainties(g, d_err_angstrom=s["d_err_angstrom"].to_numpy(float))
        if np.all(np.isfinite(sr)) and np.all(sr > 0):
            return np.stack([sr, sr], 1)
    return None


# ------------------------------------------------------------- mismatch
@dataclass(eq=False)
class MismatchResult:
    """Absolute d-spacings of a second region and its mismatch to the reference region.

    ``spots`` columns: gx_inv_nm, gy_inv_nm, hkl (from the matching reference spot, or None),
    d_file_angstrom (file calibration), d_angstrom (calibrated), d_err_angstrom (measurement and
    calibration), d_err_measurement_angstrom, d_err_calibration_angstrom, ref_d_angstrom,
    ref_d_err_angstrom, d_calc_angstrom (tabulated d of the phase), mismatch_percent
    (``d_other / d_ref - 1``), mismatch_err_percent (measurement errors only: the calibration cancels).
    """

    calibration: Calibration
    spots: object
    roi_other: dict | None = None
    lattice_other: dict | None = None

    def to_dict(self) -> dict:
        return {"calibration": self.calibration.to_dict(), "roi_other": self.roi_other,
                "spots": self.spots.to_dict("records"), "lattice_other": self.lattice_other}

    def table(self) -> str:
        lines = [f"calibration: {self.calibration.describe()}",
                 f"{'hkl':>10} {'d (Å)':>8} {'± total':>8} {'± meas':>8} {'d_ref (Å)':>9} {'mismatch %':>11} {'±':>6}"]
        for r in self.spots.to_dict("records"):
            hkl = "-" if r["hkl"] is None else format_hkl(r["hkl"])
            mm = "" if not np.isfinite(r["mismatch_percent"]) else f"{r['mismatch_percent']:+.3f}"
            me = "" if not np.isfinite(r["mismatch_err_percent"]) else f"{r['mismatch_err_percent']:.3f}"
            rd = "" if not np.isfinite(r["ref_d_angstrom"]) else f"{r['ref_d_angstrom']:.4f}"
            lines.append(f"{hkl:>10} {r['d_angstrom']:8.4f} {r['d_err_angstrom']:8.4f} "
                         f"{r['d_err_measurement_angstrom']:8.4f} {rd:>9} {mm:>11} {me:>6}")
        return "\n".join(lines)


def _abs_d(g, k_yx):
    """Calibrated d (Å) of file-calibrated vectors g (n, 2): g_true = (gx / kx, gy / ky)."""
    ky, kx = k_yx
    gt = np.stack([g[:, 0] / kx, g[:, 1] / ky], 1)
    return 10.0 / np.hypot(gt[:, 0], gt[:, 1])


def mismatch(image, roi_ref, roi_other, phase="MAPbBr3", *, zone_axis=None, calibration: Calibration | None = None,
             anisotropic: bool = False, pixel_size=None, match_angle_deg: float = 5.0, match_ratio: float = 0.1,
             d_range_angstrom=None) -> MismatchResult:
    """Absolute d-spacings of ``roi_other`` calibrated on ``roi_ref`` (known ``phase``), with mismatch.

    Each spot of the second region is paired with the reference spot of the same orientation
    (azimuth within ``match_angle_deg``, |g| within ``match_ratio``), inherits its (hkl), and gets
    ``mismatch_percent = 100 (d_other / d_ref - 1)`` whose error holds only the two measurement
    errors (the common pixel size cancels), while the absolute ``d_angstrom`` carries measurement
    and calibration errors in quadrature.

    Parameters
    ----------
    calibration : Calibration, optional
        Reuse an existing calibration of this image (else :func:`calibrate` on ``roi_ref``).

    Returns
    -------
    MismatchResult
    """
    import pandas as pd

    from ..lattice._measure import measure_lattice

    mg = as_micrograph(image, pixel_size)
    cal = calibration or calibrate(mg, roi_ref, phase, zone_axis=zone_axis, anisotropic=anisotropic,
                                   d_range_angstrom=d_range_angstrom)
    kw = {} if d_range_angstrom is None else {"d_range_angstrom": d_range_angstrom}
    other = measure_lattice(mg, roi=roi_other, **kw)
    osp = other.spots
    if osp is None or len(osp) == 0:
        raise AnalysisError("no lattice spots found in the second region", mg.source)
    ref = cal.indexing.best.spots
    ref_err = cal.lattice_spots["d_err_angstrom"].to_numpy(float) if cal.lattice_spots is not None and \
        "d_err_angstrom" in cal.lattice_spots.columns and len(cal.lattice_spots) == len(ref) else np.full(len(ref), np.nan)
    ref_ok = (ref["status"] == "allowed").to_numpy()
    rg = ref[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    og = osp[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    o_err = osp["d_err_angstrom"].to_numpy(float) if "d_err_angstrom" in osp.columns else np.full(len(og), np.nan)
    k = cal.scale_factor_yx
    d_abs = _abs_d(og, k)
    d_file = 10.0 / np.hypot(og[:, 0], og[:, 1])
    rel_meas = o_err / d_file
    err_meas = d_abs * rel_meas
    err_cal = d_abs * cal.scale_factor_err / cal.scale_factor
    rows = []
    for i in range(len(og)):
        j = _match_ref(og[i], rg, ref_ok, match_angle_deg, match_ratio)
        row = {"gx_inv_nm": og[i, 0], "gy_inv_nm": og[i, 1], "d_file_angstrom": d_file[i], "d_angstrom": d_abs[i],
               "d_err_angstrom": float(np.hypot(err_meas[i], err_cal[i])),
               "d_err_measurement_angstrom": err_meas[i], "d_err_calibration_angstrom": err_cal[i],
               "hkl": None, "ref_d_angstrom": np.nan, "ref_d_err_angstrom": np.nan, "d_calc_angstrom": np.nan,
               "mismatch_percent": np.nan, "mismatch_err_percent": np.nan}
        if j is not None:
            rd_file = 10.0 / np.hypot(*rg[j])
            ratio = d_file[i] / rd_file
            rel = math.hypot(rel_meas[i], ref_err[j] / rd_file)
            row.update({"hkl": [int(ref.h.iloc[j]), int(ref.k.iloc[j]), int(ref.l.iloc[j])],
                        "ref_d_angstrom": float(_abs_d(rg[j:j + 1], k)[0]),
                        "ref_d_err_angstrom": float(_abs_d(rg[j:j + 1], k)[0] * ref_err[j] / rd_file),
                        "d_calc_angstrom": float(ref.d_calc_angstrom.iloc[j]),
                        "mismatch_percent": 100.0 * (ratio - 1.0), "mismatch_err_percent": 100.0 * ratio * rel})
        rows.append(row)
    lat = other.to_dict() if hasattr(other, "to_dict") else None
    return MismatchResult(cal, pd.DataFrame(rows), _roi_dict(roi_other), lat)


def _match_ref(g, rg, ok, max_angle_deg, max_ratio):
    best, best_d = None, np.inf
    a = math.atan2(g[1], g[0])
    r = math.hypot(*g)
    for j in np.nonzero(ok)[0]:
        aj = math.atan2(rg[j, 1], rg[j, 0])
        da = abs((math.degrees(a - aj) + 90.0) % 180.0 - 90.0)  # Friedel: directions mod 180
        dr = abs(r / math.hypot(*rg[j]) - 1.0)
        if da <= max_angle_deg and dr <= max_ratio and da + 100 * dr < best_d:
            best, best_d = j, da + 100 * dr
    return best
