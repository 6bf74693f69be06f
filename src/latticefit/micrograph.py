"""The :class:`Micrograph`: a 2-D image that keeps its calibration with its pixels.

Every public analysis function of latticefit accepts a :class:`Micrograph`, a
calibrated hyperspy ``Signal2D`` or a plain 2-D array plus ``pixel_size``;
:func:`as_micrograph` turns any of them into a :class:`Micrograph`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import (
    CalibrationError,
    CalibrationWarning,
    DataShapeError,
    InvalidDataError,
    LatticefitWarning,
    check_param,
)
from .units import is_empty_unit, pixel_size_pair_nm, unit_to_nm

__all__ = ["Micrograph", "as_micrograph", "select_frame", "axes_pixel_size_nm", "mode_from_metadata", "constant_value"]


def select_frame(data: np.ndarray, frame=None, *, source: str | None = None) -> np.ndarray:
    """Reduce an image stack ``(n, h, w)`` to one 2-D image.

    Parameters
    ----------
    data : ndarray
        2-D image or 3-D stack (frames first).
    frame : int, ``"sum"``, ``"mean"`` or None
        Which frame, or how to combine them. Required for a stack of more
        than one frame.

    Raises
    ------
    DataShapeError
        For 1-D or >= 4-D data, or a stack without ``frame=``.
    """
    data = np.asarray(data)
    if frame is not None and not isinstance(frame, str):
        frame = check_param("frame", frame, integer=True, source=source)  # 1.5 is no frame index
    if data.ndim == 3 and data.shape[0] == 1 and frame is None:
        return data[0]
    if data.ndim == 2:
        if frame not in (None, 0, "sum", "mean"):
            raise DataShapeError(f"frame={frame!r} given but the file holds a single 2-D image", source)
        return data
    if data.ndim == 3:
        n = data.shape[0]
        if frame is None:
            raise DataShapeError(
                f"3-D stack of {n} frames {tuple(data.shape[1:])}: choose one with frame=INDEX "
                "(CLI --frame), or frame='sum' / 'mean'",
                source,
            )
        if isinstance(frame, str):
            f = frame.strip().lower()
            if f == "sum":
                return data.astype(np.float64).sum(axis=0)
            if f == "mean":
                return data.astype(np.float64).mean(axis=0)
            try:
                frame = int(f)
            except ValueError:
                raise DataShapeError(f"frame must be an index, 'sum' or 'mean', got {frame!r}", source) from None
        idx = int(frame)
        if not -n <= idx < n:
            raise DataShapeError(f"frame {idx} out of range: the stack has {n} frames (0-{n - 1})", source)
        return data[idx]
    kind = {0: "a scalar", 1: "1-D data (a spectrum or profile)"}.get(data.ndim, f"{data.ndim}-D data")
    raise DataShapeError(f"{kind} of shape {tuple(data.shape)} is not a 2-D image", source)


#: pixel sizes (nm) a microscope image can have: 1 fm to 10 mm; outside, the calibration is corrupt
PLAUSIBLE_PIXEL_NM = (1e-6, 1e7)
#: intensity spreads (robust, 1st-99th percentile) outside [2^-20, 2^20] are rescaled by a power of two
_SPREAD_RANGE = (2.0**-20, 2.0**20)
#: an offset above 2^16 spreads is removed before float32 (which keeps 24 bits: it would eat the contrast)
_MAX_OFFSET_SPREADS = 2.0**16


def _float32_exact(arr: np.ndarray) -> np.ndarray:
    """Float data brought, in float64, to a range where float32 keeps its contrast.

    A lattice multiplied by 1e-30 or 1e30, or sitting on an offset of 1e9, is the same image: in float32
    its squares under- or overflow, or the offset leaves no bits for the fringes. The data are multiplied
    by a power of two (exact) when their spread is far from 1, and a huge constant offset is subtracted;
    ordinary detector counts (spread 1e-6 ... 1e6, offset below 65536 spreads) are left untouched, so
    Poisson noise models still see counts.

    Examples
    --------
    >>> import numpy as np
    >>> x = 1e9 + np.cos(np.arange(64) / 3.0)[None, :] * np.ones((4, 1))
    >>> y = _float32_exact(x)
    >>> float(np.ptp(y.astype(np.float32))) > 1.9, abs(float(np.median(y))) < 1.0
    (True, True)
    """
    a = np.asarray(arr, dtype=np.float64)
    sample = a[np.isfinite(a)]
    if sample.size == 0:
        return a
    if sample.size > 1 << 18:
        sample = sample[:: sample.size // (1 << 18)]
    lo, med, hi = np.percentile(sample, [1, 50, 99])
    spread = hi - lo
    if not (np.isfinite(spread) and spread > 0):
        return a
    if abs(med) > _MAX_OFFSET_SPREADS * spread:
        a = a - np.round(med)
    if not _SPREAD_RANGE[0] <= spread <= _SPREAD_RANGE[1]:
        a = a * 2.0 ** -np.round(np.log2(spread))
    return a


def _clean_data(data, source) -> tuple[np.ndarray, int, np.ndarray | None]:
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise DataShapeError(f"expected a 2-D image, got shape {tuple(arr.shape)}", source)
    if arr.size == 0 or min(arr.shape) < 2:
        raise InvalidDataError(f"image of shape {tuple(arr.shape)} is empty", source)
    if np.iscomplexobj(arr):
        raise InvalidDataError("complex-valued data (an FFT or exit wave?) is not an image", source)
    if arr.dtype.kind not in "biuf":
        raise InvalidDataError(f"pixel type {arr.dtype} is not numeric", source)
    out = np.ascontiguousarray(_float32_exact(arr) if arr.dtype.kind == "f" else arr, dtype=np.float32)
    finite = np.isfinite(out)
    n_bad = int(out.size - np.count_nonzero(finite))
    if n_bad == out.size:
        raise InvalidDataError("every pixel is NaN or infinite", source)
    if n_bad:
        out = out.copy() if out is arr else out
        bad = ~finite
        del finite
        out[bad] = np.median(out[~bad])  # a neutral value; the analyses mask these pixels (invalid_mask)
        warnings.warn(
            f"{source or 'image'}: {n_bad} NaN/infinite pixels ({100.0 * n_bad / out.size:.3g} %) are masked",
            LatticefitWarning,
            stacklevel=3,
        )
        return out, n_bad, bad
    return out, 0, None


@dataclass(eq=False)
class Micrograph:
    """A calibrated 2-D micrograph.

    Parameters
    ----------
    data : ndarray
        2-D image; stored as C-contiguous float32. NaN/inf pixels are recorded
        in ``invalid_mask`` and hold the median of the others (with a warning);
        the lattice and particle analyses leave them out. An all-NaN image is
        an error.
    pixel_size_nm : (float, float) or None
        Pixel size along (y, x) in nm; ``None`` when the image is uncalibrated.
    source : str, optional
        File the image came from.
    title : str
        Signal or detector title (``'HAADF'``, ``'DF2'`` ...).
    mode : str, optional
        Acquisition mode from the metadata (``'TEM'``, ``'STEM'``, ``'HAADF'`` ...).
    beam_energy_kv : float, optional
        Accelerating voltage in kV.
    metadata : dict
        The original metadata of the file, as a nested dict.
    signals : list of str
        Titles of every signal in the source file (for ``latticefit info``).
    frames : int
        Number of frames in the source signal (1 for a single image).
    file_format : str, optional
        Reader that read the file (``'DigitalMicrograph'``, ``'Velox EMD'`` ...).
    affine_nm_per_px : (2, 2) array or None
        Full pixel-to-nm matrix of a lattice calibration (:mod:`latticefit.calibration`):
        ``[x_nm, y_nm] = A @ [x_px, y_px]`` (x right, y down). When set, ``pixel_size_nm`` is the length
        of one pixel step along y and x (the column norms of ``A``), and the lattice engine maps
        frequencies with ``A^-T`` (non-square and sheared pixels). None: ``A = diag(px, py)``.
    affine_cov : (4, 4) array or None
        Covariance of ``(A_xx, A_xy, A_yx, A_yy)``, (nm/px)^2: the calibration's own uncertainty,
        propagated into every d-spacing and angle measured on this image.
    calibration_info : dict or None
        Where the calibration came from (reference phase, file, region, date, validity statement).
    invalid_mask : bool ndarray or None
        True where the source pixel was NaN or infinite (None when every pixel is finite): excluded from
        the background, detection and fits of particles and from the lattice fit (issue #17).

    Examples
    --------
    >>> import numpy as np
    >>> mg = Micrograph(np.zeros((64, 64)), pixel_size_nm=(0.02, 0.02))
    >>> mg.shape, mg.pixel_size_nm
    ((64, 64), (0.02, 0.02))
    """

    data: np.ndarray
    pixel_size_nm: tuple[float, float] | None = None
    source: str | None = None
    title: str = ""
    mode: str | None = None
    beam_energy_kv: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    signals: list[str] = field(default_factory=list)
    frames: int = 1
    file_format: str | None = None
    n_invalid_pixels: int = 0
    original_dtype: str | None = None
    affine_nm_per_px: np.ndarray | None = None
    affine_cov: np.ndarray | None = None
    calibration_info: dict | None = None
    invalid_mask: np.ndarray | None = None

    def __post_init__(self):
        if self.original_dtype is None:
            self.original_dtype = str(np.asarray(self.data).dtype)
        self.data, nbad, bad = _clean_data(self.data, self.source)
        if self.invalid_mask is not None:  # carried by a copy (replace, crop): the data are already filled
            given = np.asarray(self.invalid_mask, bool)
            if given.shape != self.data.shape:
                raise DataShapeError(
                    f"invalid_mask of shape {given.shape} does not match the image {self.data.shape}", self.source
                )
            bad = given if bad is None else (bad | given)
        self.invalid_mask = bad if bad is not None and bad.any() else None
        nmask = 0 if self.invalid_mask is None else int(np.count_nonzero(self.invalid_mask))
        self.n_invalid_pixels = max(self.n_invalid_pixels, nbad, nmask)
        if self.pixel_size_nm is not None:
            py, px = (float(v) for v in self.pixel_size_nm)
            if not (math.isfinite(py) and math.isfinite(px) and py > 0 and px > 0):
                raise CalibrationError(f"pixel size must be positive and finite, got {self.pixel_size_nm}", self.source)
            lo, hi = PLAUSIBLE_PIXEL_NM
            if not (lo <= py <= hi and lo <= px <= hi):
                raise CalibrationError(
                    f"pixel size {self.pixel_size_nm} nm is outside any microscope's range ({lo:g} to {hi:g} nm)",
                    self.source,
                )
            self.pixel_size_nm = (py, px)
        if self.affine_nm_per_px is not None:
            A = np.array(self.affine_nm_per_px, dtype=float).reshape(2, 2)
            if not (np.all(np.isfinite(A)) and abs(np.linalg.det(A)) > 0):
                raise CalibrationError(
                    f"calibration matrix must be finite and invertible, got {A.tolist()}", self.source
                )
            self.affine_nm_per_px = A
            self.pixel_size_nm = (float(np.hypot(*A[:, 1])), float(np.hypot(*A[:, 0])))
            if self.affine_cov is not None:
                self.affine_cov = np.array(self.affine_cov, dtype=float).reshape(4, 4)

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, int]:
        """Image shape (height, width) in pixels."""
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def calibrated(self) -> bool:
        """True when the pixel size is known."""
        return self.pixel_size_nm is not None

    @property
    def name(self) -> str:
        """A short label: the file name plus the signal title when there are several."""
        import os

        base = os.path.basename(self.source) if self.source else "image"
        if self.title and len(self.signals) > 1:
            return f"{base}[{self.title}]"
        return base

    def require_calibration(self) -> tuple[float, float]:
        """Return ``pixel_size_nm`` or raise a :class:`CalibrationError` that says how to give one."""
        if self.pixel_size_nm is None:
            raise CalibrationError(
                "no pixel size in this image: pass pixel_size= (CLI --pixel-size, e.g. 0.021nm)",
                self.source,
            )
        return self.pixel_size_nm

    def blank_reason(self) -> str | None:
        """``'the image is blank (every pixel is v)'`` when every valid pixel has one value, else None.

        An SEM image with its beam blanked, a detector reading its offset, a file of zeros: an analysis
        that finds nothing on it says why.

        Examples
        --------
        >>> Micrograph(np.zeros((8, 8)), pixel_size_nm=(1.0, 1.0)).blank_reason()
        'the image is blank (every pixel is 0)'
        >>> Micrograph(np.eye(8), pixel_size_nm=(1.0, 1.0)).blank_reason() is None
        True
        """
        v = constant_value(self.data, self.invalid_mask)
        return None if v is None else f"the image is blank (every pixel is {v:.6g})"

    def with_pixel_size(self, pixel_size) -> Micrograph:
        """A copy with another pixel size (number in nm, ``'0.21A'`` or a (y, x) pair); drops any affine calibration."""
        return replace(
            self,
            pixel_size_nm=pixel_size_pair_nm(pixel_size),
            data=self.data,
            affine_nm_per_px=None,
            affine_cov=None,
            calibration_info=None,
        )

    @property
    def pixel_matrix_nm(self) -> np.ndarray:
        """The pixel-to-nm matrix ``A`` (x, y order): the affine calibration, else ``diag(px, py)``."""
        if self.affine_nm_per_px is not None:
            return self.affine_nm_per_px
        py, px = self.require_calibration()
        return np.diag([px, py])

    @property
    def reciprocal_matrix(self) -> np.ndarray:
        """``A^-T``: maps a frequency (gx, gy) in cycles/px to (gx, gy) in 1/nm (g . r is invariant).

        Examples
        --------
        >>> import numpy as np
        >>> Micrograph(np.zeros((8, 8)), pixel_size_nm=(0.02, 0.01)).reciprocal_matrix.tolist()
        [[100.0, 0.0], [0.0, 50.0]]
        """
        return np.linalg.inv(self.pixel_matrix_nm).T

    @property
    def pixel_area_nm2(self) -> float:
        """Area of one pixel, nm^2 (``|det A|``)."""
        return float(abs(np.linalg.det(self.pixel_matrix_nm)))

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> Micrograph:
        """A copy holding ``data[y0:y1, x0:x1]`` with the same calibration."""
        bad = None if self.invalid_mask is None else self.invalid_mask[y0:y1, x0:x1].copy()
        return replace(self, data=self.data[y0:y1, x0:x1].copy(), invalid_mask=bad)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (the ``latticefit info`` record)."""
        return {
            "file": self.source,
            "format": self.file_format,
            "title": self.title,
            "shape": list(self.shape),
            "dtype": self.original_dtype,
            "pixel_size_nm": list(self.pixel_size_nm) if self.pixel_size_nm else None,
            "mode": self.mode,
            "beam_energy_kv": self.beam_energy_kv,
            "signals": list(self.signals) if self.signals else [self.title],
            "frames": int(self.frames),
        }

    def __repr__(self) -> str:
        ps = (
            "uncalibrated"
            if self.pixel_size_nm is None
            else f"pixel_size_nm=({self.pixel_size_nm[0]:.6g}, {self.pixel_size_nm[1]:.6g})"
        )
        return f"Micrograph({self.name!r}, shape={self.shape}, {ps}, mode={self.mode!r})"

    # ------------------------------------------------------------- hyperspy
    def to_signal(self):
        """A calibrated hyperspy ``Signal2D`` (axes y, x in nm) holding a copy of the data."""
        import hyperspy.api as hs

        s = hs.signals.Signal2D(self.data.copy())
        py, px = self.pixel_size_nm if self.pixel_size_nm else (1.0, 1.0)
        unit = "nm" if self.pixel_size_nm else "px"
        ay, ax = s.axes_manager.signal_axes[1], s.axes_manager.signal_axes[0]
        ay.name, ay.scale, ay.units = "y", py, unit
        ax.name, ax.scale, ax.units = "x", px, unit
        s.metadata.General.title = self.title or ""
        if self.source:
            s.metadata.General.original_filename = str(self.source)
        if self.beam_energy_kv is not None:
            s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", float(self.beam_energy_kv))
        if self.mode is not None:
            s.metadata.set_item("Acquisition_instrument.TEM.acquisition_mode", str(self.mode))
        try:
            s.original_metadata.add_dictionary(self.metadata or {})
        except Exception:  # metadata that hyperspy cannot hold is not worth failing for
            pass
        return s

    @classmethod
    def from_signal(cls, signal, *, frame=None, source: str | None = None, pixel_size=None) -> Micrograph:
        """Build a Micrograph from a hyperspy signal, keeping its calibration.

        A stack (one navigation axis) needs ``frame=``; empty axis units are
        taken as nm with a :class:`~latticefit.errors.CalibrationWarning`.
        """
        if source is None:
            fn = signal.metadata.get_item("General.original_filename")
            source = str(fn) if fn else None
        if signal.axes_manager.signal_dimension != 2:
            raise DataShapeError(
                f"{signal.axes_manager.signal_dimension}-D signal of shape {tuple(signal.data.shape)} is not a 2-D image",
                source,
            )
        nav = signal.axes_manager.navigation_dimension
        if nav > 1:
            raise DataShapeError(
                f"{signal.data.ndim}-D data of shape {tuple(signal.data.shape)} (a 4-D/spectrum-image dataset) is not a 2-D image",
                source,
            )
        data = select_frame(signal.data, frame, source=source)
        frames = int(signal.data.shape[0]) if nav == 1 else 1
        if pixel_size is not None:
            ps = pixel_size_pair_nm(pixel_size)
        else:
            ps = axes_pixel_size_nm(signal.axes_manager.signal_axes, source=source)
        md = signal.metadata
        try:
            original = signal.original_metadata.as_dictionary()
        except Exception:
            original = {}
        energy = md.get_item("Acquisition_instrument.TEM.beam_energy")
        if energy is None:
            energy = md.get_item("Acquisition_instrument.SEM.beam_energy")
        title = md.get_item("General.title") or ""
        return cls(
            data=data,
            pixel_size_nm=ps,
            source=source,
            title=str(title),
            mode=mode_from_metadata(md, title=str(title)),
            beam_energy_kv=float(energy) if energy else None,
            metadata=original,
            signals=[str(title)],
            frames=frames,
        )


def constant_value(data, invalid=None) -> float | None:
    """The one value every valid pixel holds (a blank image), else None; NaN when no pixel is valid.

    Examples
    --------
    >>> constant_value(np.full((4, 4), 3.0)), constant_value(np.eye(4))
    (3.0, None)
    """
    d = data if invalid is None else data[~invalid]
    if d.size == 0:
        return float("nan")
    lo, hi = float(np.min(d)), float(np.max(d))
    return lo if lo == hi else None


def axes_pixel_size_nm(signal_axes, *, source: str | None = None) -> tuple[float, float] | None:
    """Pixel size (y, x) in nm from hyperspy signal axes (x first, as hyperspy orders them).

    Empty units are assumed to be nm, with a warning. Axes whose unit is not a
    length (e.g. ``1/nm`` of a diffraction pattern) raise :class:`CalibrationError`.
    Returns ``None`` when both axes are uncalibrated (scale 1, no unit).
    """
    ax, ay = signal_axes[0], signal_axes[1]
    out = []
    assumed = False
    for a in (ay, ax):
        scale = float(a.scale)
        units = a.units
        if not np.isfinite(scale) or scale == 0.0:
            warnings.warn(
                f"{source or 'image'}: pixel size {scale!r} {units or ''} is not usable "
                "(zero or not finite); the image is treated as uncalibrated",
                CalibrationWarning,
                stacklevel=3,
            )
            return None
        if is_empty_unit(units):
            if scale == 1.0:
                out.append(None)
                continue
            assumed = True
            factor = 1.0
        else:
            try:
                factor = unit_to_nm(units)
            except CalibrationError as e:
                raise CalibrationError(f"axis unit {units!r} is not a length ({e.message})", source) from None
        out.append(abs(scale) * factor)
    if out[0] is None and out[1] is None:
        return None
    bad = [v for v in out if v is not None and not PLAUSIBLE_PIXEL_NM[0] <= v <= PLAUSIBLE_PIXEL_NM[1]]
    if bad:
        warnings.warn(
            f"{source or 'image'}: pixel size {bad[0]:.3g} nm is outside any microscope's range "
            f"({PLAUSIBLE_PIXEL_NM[0]:g} to {PLAUSIBLE_PIXEL_NM[1]:g} nm); the image is treated as "
            "uncalibrated",
            CalibrationWarning,
            stacklevel=3,
        )
        return None
    if out[0] is None or out[1] is None:
        v = out[0] if out[0] is not None else out[1]
        out = [v, v]
    if assumed:
        warnings.warn(
            f"{source or 'image'}: pixel size has no unit; assuming nm ({out[0]:.6g} nm/px)",
            CalibrationWarning,
            stacklevel=3,
        )
    return (float(out[0]), float(out[1]))


def mode_from_metadata(md, *, title: str = "") -> str | None:
    """Acquisition mode from hyperspy metadata and the signal/detector title.

    Returns ``'HAADF'``, ``'ADF'``, ``'ABF'``, ``'BF'`` (STEM detectors) when the
    title names one, else ``'STEM'`` / ``'TEM'`` from
    ``Acquisition_instrument.TEM.acquisition_mode``, else ``None``.
    """
    t = (title or "").upper()
    for det in ("HAADF", "ABF", "ADF", "DF4", "DF2", "BF"):
        if det in t.replace("-", "").split() or t.startswith(det) or t == det:
            return {"DF4": "ADF", "DF2": "ADF"}.get(det, det)
    mode = None
    try:
        mode = md.get_item("Acquisition_instrument.TEM.acquisition_mode")
    except Exception:
        pass
    if mode:
        m = str(mode).upper()
        if "STEM" in m:
            return "STEM"
        if "TEM" in m:
            return "TEM"
        return str(mode)
    return None


def as_micrograph(image, pixel_size=None, *, source: str | None = None, frame=None, calibration=None) -> Micrograph:
    """Turn a Micrograph, a hyperspy ``Signal2D`` or a 2-D array into a :class:`Micrograph`.

    Parameters
    ----------
    image : Micrograph, Signal2D or array_like
        The image.
    pixel_size : float, str or (float, float), optional
        Pixel size in nm (a bare number), a length string (``'0.21A'``) or a
        (y, x) pair. Overrides the calibration the image carries.
    calibration : Calibration, dict or path to a calibration JSON, optional
        A lattice calibration (:class:`latticefit.calibration.Calibration`) applied to the image
        (after ``pixel_size``): the Micrograph then carries its affine pixel-to-nm matrix and its
        uncertainty, so every length measured on it is in corrected nm.

    Examples
    --------
    >>> import numpy as np
    >>> as_micrograph(np.ones((32, 32)), pixel_size="0.5A").pixel_size_nm
    (0.05, 0.05)
    """
    if calibration is not None:
        from .crystal._calibration_record import as_calibration

        return as_calibration(calibration).apply(as_micrograph(image, pixel_size, source=source, frame=frame))
    if isinstance(image, Micrograph):
        return image if pixel_size is None else image.with_pixel_size(pixel_size)
    if hasattr(image, "axes_manager") and hasattr(image, "metadata"):
        return Micrograph.from_signal(image, frame=frame, source=source, pixel_size=pixel_size)
    arr = np.asarray(image)
    arr = select_frame(arr, frame, source=source)
    ps = pixel_size_pair_nm(pixel_size) if pixel_size is not None else None
    return Micrograph(arr, pixel_size_nm=ps, source=source)
