"""Part of :mod:`_lattice_report` (see its docstring): fov."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError
from ..micrograph import Micrograph

#: relative field-of-view difference above which HAADF outlines are not mapped onto the HRTEM
FOV_RTOL = 0.03
#: real-space resolution (nm) of the HRTEM anomaly map used to find a dot without HAADF (dots are a few nm)
ANOMALY_RESOLUTION_NM = 0.8
#: window of the displayed power spectra (the measurement uses its own); Hann keeps the spots compact
FFT_DISPLAY_WINDOW = "hann"
#: largest side (px) of the automatic matrix square (the largest square clear of every dot, capped here)
MATRIX_MAX_SIDE_PX = 512
#: the automatic dot disk is this fraction of the segmented dot's radius (keeps the soft rim and the interface out)
DOT_RADIUS_FRACTION = 0.8
#: margin (nm) kept between the automatic matrix square and any dot
DOT_MARGIN_NM = 0.5


# =====================================================================  geometry
@dataclass
class FieldOfViewCheck:
    """Whether a HAADF and an HRTEM image cover the same area.

    Attributes
    ----------
    agree : bool
        Both fields of view (shape × pixel size) agree within ``rtol`` on each axis.
    hrtem_fov_nm, haadf_fov_nm : (float, float) or None
        (height, width) in nm; None for an uncalibrated image.
    rel_diff : (float, float) or None
        Relative difference along (y, x).
    scale_yx : (float, float) or None
        HRTEM pixels per HAADF pixel along (y, x) (only when ``agree``).
    message : str
        One line for the figure and stderr ('' when they agree).
    """

    agree: bool
    hrtem_fov_nm: tuple[float, float] | None
    haadf_fov_nm: tuple[float, float] | None
    rel_diff: tuple[float, float] | None
    scale_yx: tuple[float, float] | None
    message: str = ""

    def to_dict(self) -> dict:
        return {
            "agree": self.agree,
            "hrtem_fov_nm": self.hrtem_fov_nm,
            "haadf_fov_nm": self.haadf_fov_nm,
            "rel_diff": self.rel_diff,
            "scale_yx": self.scale_yx,
            "message": self.message,
        }


def _fov_nm(mg: Micrograph):
    if mg.pixel_size_nm is None:
        return None
    return (mg.shape[0] * mg.pixel_size_nm[0], mg.shape[1] * mg.pixel_size_nm[1])


def check_fields_of_view(hrtem, haadf, *, rtol: float = FOV_RTOL) -> FieldOfViewCheck:
    """Check that an HRTEM and a HAADF image show the same area (same physical size).

    Parameters
    ----------
    hrtem, haadf : Micrograph
        The two images.
    rtol : float
        Largest relative difference of height and width accepted.

    Returns
    -------
    FieldOfViewCheck

    Examples
    --------
    >>> import numpy as np
    >>> from latticefit import Micrograph
    >>> a = Micrograph(np.zeros((512, 512)), pixel_size_nm=(0.02, 0.02))
    >>> b = Micrograph(np.zeros((128, 128)), pixel_size_nm=(0.08, 0.08))
    >>> check_fields_of_view(a, b).scale_yx
    (4.0, 4.0)
    """
    fa, fb = _fov_nm(hrtem), _fov_nm(haadf)
    if fa is None or fb is None:
        which = "HRTEM" if fa is None else "HAADF"
        return FieldOfViewCheck(
            False,
            fa,
            fb,
            None,
            None,
            f"{which} image has no pixel size: cannot check that the HAADF shows the same area; "
            "dot outlines are not mapped onto the HRTEM",
        )
    rel = (abs(fb[0] - fa[0]) / fa[0], abs(fb[1] - fa[1]) / fa[1])
    if max(rel) > rtol:
        msg = (
            f"HAADF field of view {fb[1]:.3g} x {fb[0]:.3g} nm differs from the HRTEM's {fa[1]:.3g} x {fa[0]:.3g} nm "
            f"by {100 * max(rel):.0f}% (> {100 * rtol:.0f}%): not the same area, dot outlines not mapped onto the HRTEM"
        )
        return FieldOfViewCheck(False, fa, fb, rel, None, msg)
    scale = (hrtem.shape[0] / haadf.shape[0], hrtem.shape[1] / haadf.shape[1])
    return FieldOfViewCheck(True, fa, fb, rel, (float(scale[0]), float(scale[1])), "")


def haadf_to_hrtem_points(x_px, y_px, fov: FieldOfViewCheck):
    """Map HAADF pixel coordinates to HRTEM pixel coordinates (pixel centres, same field of view)."""
    if not fov.agree or fov.scale_yx is None:
        raise AnalysisError("the HAADF and HRTEM fields of view differ: HAADF positions cannot be mapped")
    sy, sx = fov.scale_yx
    x = (np.asarray(x_px, float) + 0.5) * sx - 0.5
    y = (np.asarray(y_px, float) + 0.5) * sy - 0.5
    return x, y
