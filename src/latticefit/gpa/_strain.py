"""Steps 2-4 of GPA: phase gradients, the displacement gradient and the strain tensor.

With the reference reciprocal vectors as the rows of ``G`` (cycles/px) the two
phases are ``(P1, P2) = -2 pi G u`` (Hÿtch et al. 1998, eq. 11), so

    u = -(1/2 pi) G^-1 (P1, P2)                                   (displacement)
    D = du/dr = -(1/2 pi) G^-1 [grad P1; grad P2]                  (eq. 13)

D is the (Eulerian) displacement gradient in pixel coordinates; in nm it is
``C D C^-1`` for the pixel-to-nm matrix C. The local lattice is ``F`` times the
reference lattice with ``F = (I - D)^-1`` (the local reciprocal vectors are
``G + grad P / 2 pi = G (I - D)``), and the maps reported are the components
of ``F - I``: ``exx = +0.01`` means the lattice is 1 % longer along x than the
reference. (The linear ``e = D`` of the paper differs by O(e^2): 0.02 % at 2 %.)
Rotation is positive from +x towards +y (clockwise on screen, y pointing down).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "COMPONENT_WEIGHTS",
    "deformation",
    "displacement",
    "map_gradient_weights",
    "phase_gradient",
    "strain_sigma_coefficients",
    "strain_sigmas",
    "wrapped_phase",
]

TWO_PI = 2.0 * np.pi


def phase_gradient(h: np.ndarray, residual_px) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient (d/dx, d/dy) of the phase of ``h`` in rad/px, carrier removed.

    ``angle(h[x+1] conj(h[x-1])) / 2`` never needs unwrapping; one-sided at the edges.
    ``residual_px`` = (gx, gy) - k0, the carrier left in ``h``.
    """
    out = []
    for axis, r in ((1, residual_px[0]), (0, residual_px[1])):
        g = np.empty(h.shape, dtype=np.float32)
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        c = [slice(None)] * 2
        a[axis], b[axis], c[axis] = slice(2, None), slice(None, -2), slice(1, -1)
        g[tuple(c)] = np.angle(h[tuple(a)] * np.conj(h[tuple(b)])) * 0.5
        for edge, (i, j) in ((0, (1, 0)), (-1, (-1, -2))):
            e = [slice(None)] * 2
            e1 = [slice(None)] * 2
            e2 = [slice(None)] * 2
            e[axis], e1[axis], e2[axis] = edge, i, j
            g[tuple(e)] = np.angle(h[tuple(e1)] * np.conj(h[tuple(e2)]))
        g -= np.float32(TWO_PI * r)
        out.append(g)
    return out[0], out[1]


def wrapped_phase(h: np.ndarray, residual_px) -> np.ndarray:
    """Phase ``P_g`` in (-pi, pi]: ``angle(h) - 2 pi (g - k0).r``, r in pixels."""
    ny, nx = h.shape
    ramp = (
        float(TWO_PI * residual_px[0]) * np.arange(nx, dtype=np.float32)[None, :]
        + float(TWO_PI * residual_px[1]) * np.arange(ny, dtype=np.float32)[:, None]
    )
    p = np.angle(h) - ramp
    p += np.float32(np.pi)
    np.mod(p, np.float32(TWO_PI), out=p)
    p -= np.float32(np.pi)
    return p


def displacement(p1, p2, g_px: np.ndarray, c_nm_per_px: np.ndarray):
    """``u = -(1/2 pi) C G^-1 (P1, P2)`` in nm (modulo a lattice vector)."""
    k = (-(c_nm_per_px @ np.linalg.inv(g_px)) / TWO_PI).tolist()
    return (k[0][0] * p1 + k[0][1] * p2).astype(np.float32), (k[1][0] * p1 + k[1][1] * p2).astype(np.float32)


def deformation(grads, g_px: np.ndarray, c_nm_per_px: np.ndarray) -> dict[str, np.ndarray]:
    """Strain maps from the phase gradients ``grads = (P1x, P1y, P2x, P2y)`` (rad/px).

    Returns ``exx``, ``eyy``, ``exy`` (symmetric part of F - I), ``rotation_rad``
    (``atan2(Fyx - Fxy, Fxx + Fyy)``) and ``dilatation`` (``exx + eyy``).
    """
    p1x, p1y, p2x, p2y = grads
    # D_nm = K Phi C^-1 with K = -(1/2 pi) C G^-1 and Phi = [[P1x, P1y], [P2x, P2y]]
    # plain floats: a numpy float64 scalar would promote the float32 maps to float64 (NEP 50)
    c_inv = np.linalg.inv(c_nm_per_px).tolist()
    k = (-(c_nm_per_px @ np.linalg.inv(g_px)) / TWO_PI).tolist()
    # Phi C^-1 (rows k, columns nm-x, nm-y)
    q11 = p1x * c_inv[0][0] + p1y * c_inv[1][0]
    q12 = p1x * c_inv[0][1] + p1y * c_inv[1][1]
    q21 = p2x * c_inv[0][0] + p2y * c_inv[1][0]
    q22 = p2x * c_inv[0][1] + p2y * c_inv[1][1]
    dxx = k[0][0] * q11 + k[0][1] * q21
    dxy = k[0][0] * q12 + k[0][1] * q22
    dyx = k[1][0] * q11 + k[1][1] * q21
    dyy = k[1][0] * q12 + k[1][1] * q22
    # F = (I - D)^-1
    axx, axy, ayx, ayy = 1.0 - dxx, -dxy, -dyx, 1.0 - dyy
    det = axx * ayy - axy * ayx
    fxx, fxy, fyx, fyy = ayy / det, -axy / det, -ayx / det, axx / det
    exx = (fxx - 1.0).astype(np.float32)
    eyy = (fyy - 1.0).astype(np.float32)
    return {
        "exx": exx,
        "eyy": eyy,
        "exy": (0.5 * (fxy + fyx)).astype(np.float32),
        "rotation_rad": np.arctan2(fyx - fxy, fxx + fyy).astype(np.float32),
        "dilatation": (exx + eyy).astype(np.float32),
    }


#: each map as a linear functional of F: weights on (Fxx, Fxy, Fyx, Fyy)
COMPONENT_WEIGHTS = {
    "exx": (1.0, 0.0, 0.0, 0.0),
    "eyy": (0.0, 0.0, 0.0, 1.0),
    "exy": (0.0, 0.5, 0.5, 0.0),
    "rotation_rad": (0.0, -0.5, 0.5, 0.0),
    "dilatation": (1.0, 0.0, 0.0, 1.0),
}


def strain_sigma_coefficients(
    g_px: np.ndarray, c_nm_per_px: np.ndarray, grad_var_base
) -> dict[str, tuple[float, float]]:
    """Per map, ``(a1, a2)`` with ``var(map) = a1 / |h1|^2 + a2 / |h2|^2``.

    First-order propagation with F ~ I (relative error of sigma ~ |strain|):
    ``dF = K dPhi C^-1``, the four gradient errors independent with variances
    ``grad_var_base[k][j] / |h_k|^2`` (the two masks do not overlap; the x and y
    differences of one field are uncorrelated by the symmetry of the mask).
    """
    out = {}
    for name, dm in map_gradient_weights(g_px, c_nm_per_px).items():
        coef = [sum(dm[kk, j] ** 2 * grad_var_base[kk][j] for j in range(2)) for kk in range(2)]
        out[name] = (coef[0], coef[1])
    return out


def map_gradient_weights(g_px: np.ndarray, c_nm_per_px: np.ndarray) -> dict[str, np.ndarray]:
    """Per map, the 2x2 derivative ``d map / d Phi[k, j]`` (field k, pixel axis j) at F = I."""
    c_inv = np.linalg.inv(c_nm_per_px)
    k = -(c_nm_per_px @ np.linalg.inv(g_px)) / TWO_PI
    out = {}
    for name, w in COMPONENT_WEIGHTS.items():
        wm = np.array([[w[0], w[1]], [w[2], w[3]]])  # weights on F[a, b]
        # d map / d Phi[kk, j] = sum_ab w_ab K[a, kk] Cinv[j, b]
        out[name] = np.einsum("ab,ak,jb->kj", wm, k, c_inv)
    return out


def strain_sigmas(h1: np.ndarray, h2: np.ndarray, coefs) -> dict[str, np.ndarray]:
    """Per-pixel 1-sigma maps from :func:`strain_sigma_coefficients` and the field amplitudes."""
    inv1 = np.float32(1.0) / np.maximum(np.abs(h1) ** 2, np.float32(1e-30))
    inv2 = np.float32(1.0) / np.maximum(np.abs(h2) ** 2, np.float32(1e-30))
    return {name: np.sqrt(float(a1) * inv1 + float(a2) * inv2) for name, (a1, a2) in coefs.items()}
