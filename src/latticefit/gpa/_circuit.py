"""Burgers circuit: the closure failure of the displacement around a loop, from the strain maps."""

from __future__ import annotations

import numpy as np

__all__ = ["burgers_vector", "displacement_gradient"]


def displacement_gradient(result) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``D = I - F^-1`` (Dxx, Dxy, Dyx, Dyy), rebuilt from the exx, eyy, exy, rotation maps."""
    half_trace = 1.0 + 0.5 * (result.exx.astype(np.float64) + result.eyy)
    w = np.tan(result.rotation_rad.astype(np.float64)) * half_trace  # (Fyx - Fxy) / 2
    fxx, fyy = 1.0 + result.exx.astype(np.float64), 1.0 + result.eyy.astype(np.float64)
    fxy, fyx = result.exy - w, result.exy + w
    det = fxx * fyy - fxy * fyx
    return 1.0 - fyy / det, fxy / det, fyx / det, 1.0 - fxx / det


def burgers_vector(result, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Closure failure ``b = loop integral of (du/dr) dl`` (nm) around the rectangle (x0, y0)-(x1, y1), in px.

    The loop runs +x along row y0, +y along column x1, -x along row y1 and -y
    along column x0: the sense in which the polar angle (from +x towards +y)
    increases. Trapezoidal rule, the step is one pixel in the calibrated frame.

    Examples
    --------
    A loop around no defect closes:

    >>> import numpy as np
    >>> from latticefit.gpa import strain_map
    >>> from latticefit.micrograph import Micrograph
    >>> y, x = np.mgrid[:200, :200] * 0.02
    >>> img = np.cos(2 * np.pi * x / 0.4) + np.cos(2 * np.pi * y / 0.4)
    >>> sm = strain_map(Micrograph(img, pixel_size_nm=(0.02, 0.02)), g=((2.5, 0), (0, 2.5)), sigma_nm=0.3)
    >>> bool(np.linalg.norm(burgers_vector(sm, 70, 70, 130, 130)) < 1e-4)
    True
    """
    dxx, dxy, dyx, dyy = displacement_gradient(result)
    c = result.matrix_nm_per_px
    step_x = c[:, 0]  # nm per +1 px along x
    step_y = c[:, 1]

    def seg(along_x: bool, fixed: int, a: int, b: int) -> np.ndarray:
        idx = np.arange(a, b + 1) if b >= a else np.arange(a, b - 1, -1)
        sgn = 1.0 if b >= a else -1.0
        if along_x:
            d = [m[fixed, idx] for m in (dxx, dxy, dyx, dyy)]
            dl = sgn * step_x
        else:
            d = [m[idx, fixed] for m in (dxx, dxy, dyx, dyy)]
            dl = sgn * step_y
        du_x = d[0] * dl[0] + d[1] * dl[1]
        du_y = d[2] * dl[0] + d[3] * dl[1]
        return np.array([np.trapezoid(du_x), np.trapezoid(du_y)])

    return seg(True, y0, x0, x1) + seg(False, x1, y0, y1) + seg(True, y1, x1, x0) + seg(False, x0, y1, y0)
