"""Affine calibration from a lattice of known structure: the math behind :mod:`latticefit.calibration`.

Conventions: the pixel-to-nm matrix ``A`` maps a pixel step to a real-space step,
``[x_nm, y_nm] = A @ [x_px, y_px]`` (x right, y down); a frequency in cycles/px
``g_px`` becomes ``g = A^-T g_px`` in 1/nm (``g . r`` is invariant). A file's own
calibration is ``A_file = diag(px, py)``.

Model. A spot measured with the file calibration, ``g_file = A_file^-T g_px``,
and the tabulated vector of its reflection ``g_calc`` (crystal frame rotated into
the image, true scale) obey ``g_file = M g_calc`` with ``M = A_file^-T A^T R``
(``R``: the unknown in-plane orientation of the crystal). ``M`` is linear in the
data: weighted least squares over all indexed spots (each with its 2x2
covariance) gives ``M`` and its 4x4 covariance exactly. ``A^T R = A_file^T M`` is
then split (LQ decomposition) into a rotation and an upper-triangular ``A``:
the fast-scan (x) pixel step stays along x, the y step may lean (shear). Its
covariance follows by the Jacobian of that map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AffineFit",
    "fit_reciprocal_matrix",
    "pixel_matrix_from_reciprocal",
    "affine_parameters",
    "propagate",
    "spot_calibration_errors",
    "strain_of",
]


@dataclass
class AffineFit:
    """``g_file = M g_calc`` fitted by weighted least squares.

    ``M`` (2x2), ``cov_M`` (4x4, row-major order M00, M01, M10, M11), ``chi2``,
    ``dof``, ``birge`` (sqrt(chi2/dof) when chi2 is significant at p < 0.01, else 1;
    the errors are scaled by it), ``residual_inv_nm`` (n, 2): ``g_file - M g_calc``.
    """

    M: np.ndarray
    cov_M: np.ndarray
    chi2: float
    dof: int
    birge: float
    residual_inv_nm: np.ndarray


def fit_reciprocal_matrix(g_file, g_calc, cov=None) -> AffineFit:
    """Weighted least-squares fit of ``g_file = M g_calc`` (n >= 2 independent spots).

    Parameters
    ----------
    g_file, g_calc : array (n, 2)
        Observed (file calibration) and tabulated vectors, 1/nm.
    cov : array (n, 2, 2), optional
        Covariance of each observed vector; unit weights (errors from the scatter) when absent.

    Examples
    --------
    >>> import numpy as np
    >>> gc = np.array([[2.56, 0], [0, 2.56], [2.56, 2.56], [2.56, -2.56]])
    >>> M = np.array([[1.02, 0.01], [0.0, 0.99]])
    >>> (np.round(fit_reciprocal_matrix(gc @ M.T, gc).M, 6) + 0.0).tolist()
    [[1.02, 0.01], [0.0, 0.99]]
    """
    from ._stats import chi2_sf

    go = np.asarray(g_file, float).reshape(-1, 2)
    gc = np.asarray(g_calc, float).reshape(-1, 2)
    n = len(go)
    X = np.zeros((2 * n, 4))
    X[0::2, 0:2] = gc
    X[1::2, 2:4] = gc
    y = go.reshape(-1)
    unit = cov is None
    if unit:
        W = np.eye(2 * n)
    else:
        C = np.asarray(cov, float).reshape(n, 2, 2)
        W = np.zeros((2 * n, 2 * n))
        for i in range(n):
            W[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = np.linalg.inv(C[i])
    XtW = X.T @ W
    F = XtW @ X
    m = np.linalg.solve(F, XtW @ y)
    cov_m = np.linalg.inv(F)
    r = y - X @ m
    chi2 = float(r @ W @ r)
    dof = max(2 * n - 4, 0)
    if unit:
        birge = math.sqrt(chi2 / dof) if dof > 0 else float("nan")
    else:
        birge = math.sqrt(chi2 / dof) if dof > 0 and chi2_sf(chi2, dof) < 0.01 else 1.0
    if np.isfinite(birge):
        cov_m = cov_m * birge**2
    return AffineFit(m.reshape(2, 2), cov_m, chi2, dof, float(birge), r.reshape(n, 2))


def _lq_upper(P: np.ndarray):
    """``P = A^T Q``: A upper triangular with positive diagonal, Q orthogonal (det +1 when det P > 0)."""
    Qr, Rr = np.linalg.qr(P.T)  # P^T = Qr Rr -> P = Rr^T Qr^T
    s = np.sign(np.diag(Rr))
    s[s == 0] = 1.0
    Rr = s[:, None] * Rr
    Qr = Qr * s[None, :]
    return Rr, Qr.T  # A = Rr (upper), rotation Q = Qr^T


def pixel_matrix_from_reciprocal(M: np.ndarray, A_file: np.ndarray):
    """Upper-triangular pixel-to-nm matrix ``A``, the crystal rotation (deg) and ``mirror`` from a fitted ``M``.

    A mirrored indexing (det M < 0, equivalent for a mirror-symmetric projection) is
    undone by flipping ``g_calc``'s y axis first.
    """
    mirror = bool(np.linalg.det(M) < 0)
    Mm = M @ np.diag([1.0, -1.0]) if mirror else M
    A, Q = _lq_upper(A_file.T @ Mm)
    return A, math.degrees(math.atan2(Q[1, 0], Q[0, 0])), mirror


def propagate(f, x: np.ndarray, cov: np.ndarray, step: float = 1e-7):
    """Value and covariance of ``f(x)`` (vector valued) by a central-difference Jacobian."""
    x = np.asarray(x, float)
    y0 = np.atleast_1d(np.asarray(f(x), float))
    J = np.zeros((y0.size, x.size))
    for k in range(x.size):
        h = step * max(1.0, abs(x[k]))
        xp, xm = x.copy(), x.copy()
        xp[k] += h
        xm[k] -= h
        J[:, k] = (np.atleast_1d(f(xp)) - np.atleast_1d(f(xm))) / (2 * h)
    return y0, J @ cov @ J.T


def affine_parameters(A: np.ndarray, A_file: np.ndarray) -> np.ndarray:
    """``[k_x, k_y, anisotropy_percent, shear_deg]`` of a pixel matrix against the file's.

    ``k_x = |A e_x| / |A_file e_x|`` (true / file length of a pixel step along x), ``k_y``
    likewise along y, anisotropy ``100 (k_x / k_y - 1)``, shear = angle by which the y pixel
    step leans from the normal to the x step (positive towards +x).
    """
    kx = math.hypot(*A[:, 0]) / math.hypot(*A_file[:, 0])
    ky = math.hypot(*A[:, 1]) / math.hypot(*A_file[:, 1])
    ax = math.atan2(A[1, 0], A[0, 0])
    ay = math.atan2(A[1, 1], A[0, 1])
    shear = math.degrees(math.pi / 2 - (ay - ax))
    return np.array([kx, ky, 100.0 * (kx / ky - 1.0), shear])


def strain_of(A_local: np.ndarray, A_global: np.ndarray) -> np.ndarray:
    """Symmetric part of ``A_local A_global^-1 - I``: ``[e_xx, e_yy, e_xy]``."""
    D = A_local @ np.linalg.inv(A_global) - np.eye(2)
    return np.array([D[0, 0], D[1, 1], 0.5 * (D[0, 1] + D[1, 0])])


def spot_calibration_errors(g_inv_nm: np.ndarray, B: np.ndarray, cov_A: np.ndarray):
    """Calibration part of the errors of |g| and azimuth of spots measured with ``B = A^-T``.

    Returns ``(sigma_g_inv_nm, sigma_azimuth_rad, dphi_dA)`` where ``dphi_dA`` (n, 4) is the
    Jacobian of each azimuth on ``vec(A)`` (for angles between spots). ``dg/dA_kl = -B[:, l] g_k``.
    """
    g = np.asarray(g_inv_nm, float).reshape(-1, 2)
    n = len(g)
    dg = np.zeros((n, 2, 4))
    for idx, (k, l) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        dg[:, :, idx] = -B[:, l][None, :] * g[:, k][:, None]
    gn = np.linalg.norm(g, axis=1)
    u = g / gn[:, None]
    nperp = np.column_stack([-u[:, 1], u[:, 0]])
    dabs = np.einsum("ni,nik->nk", u, dg)
    dphi = np.einsum("ni,nik->nk", nperp, dg) / gn[:, None]
    sg = np.sqrt(np.abs(np.einsum("nk,kl,nl->n", dabs, cov_A, dabs)))
    sphi = np.sqrt(np.abs(np.einsum("nk,kl,nl->n", dphi, cov_A, dphi)))
    return sg, sphi, dphi
