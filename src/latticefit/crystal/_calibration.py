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

from ._calibrate import (  # noqa: F401
    _affine_from_fit,
    _calibrate_affine,
    _component_covs,
    _component_sigmas,
    _now,
    _residual_table,
    _spread_deg,
    _tile_grid,
    calibrate,
    fit_pixel_scale,
    nonlinear_distortion,
)
from ._calibration_record import (  # noqa: F401
    CALIBRATION_SCHEMA_VERSION,
    VALIDITY,
    Calibration,
    _lattice_of,
    _num,
    _phase,
    _roi_dict,
    as_calibration,
    load_calibration,
)
from ._mismatch import MismatchResult, _abs_d, _match_ref, mismatch  # noqa: F401

__all__ = [
    "Calibration",
    "calibrate",
    "fit_pixel_scale",
    "MismatchResult",
    "mismatch",
    "load_calibration",
    "as_calibration",
    "nonlinear_distortion",
    "VALIDITY",
    "CALIBRATION_SCHEMA_VERSION",
]
