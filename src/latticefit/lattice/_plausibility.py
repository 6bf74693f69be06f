"""Plausibility of lattice spots: what a significant FFT maximum can be when it is not a lattice.

Spots refused here are kept out of every lattice and of the indexing, listed in
``LatticeResult.rejected_spots`` with a ``reason`` and summarised in a warning:

- a blank or featureless image (its robust contrast is below ``BLANK_CONTRAST``
  of its level): nothing it shows is a lattice;
- spacings above ``MAX_D_NM`` (50 nm) or periods below 2 px;
- spacings below the information limit: from the beam energy when the metadata
  has it, ``lambda / (2 * APERTURE_RAD)`` (35 mrad, a generous aberration-corrected
  aperture), and from the data: the |g| beyond which the azimuthal median of the
  power spectrum has fallen to its noise floor, or the highest-order reflection
  of the main lattice, whichever is larger (:func:`information_limit`);
- streaks: a maximum elongated along its radial direction (the streak of a
  straight edge through the origin of the spectrum) rather than a compact spot
  (second moments of the Hann-windowed power around it);
- scan-line periodicities: in a STEM image, spots exactly on the kx = 0 or ky = 0
  axis when no spot lies off the axes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

__all__ = [
    "REJECTED_COLUMNS",
    "beam_limit_angstrom",
    "beyond_limit",
    "check_spots",
    "electron_wavelength_pm",
    "empty_rejected",
    "information_limit",
    "is_featureless",
    "rejected_table",
    "ring_profile",
    "spectral_floor_limit",
]

REJECTED_COLUMNS = ["gx_inv_nm", "gy_inv_nm", "d_angstrom", "azimuth_deg", "snr", "reason"]
MAX_D_NM = 50.0
MIN_PERIOD_PX = 2.0
APERTURE_RAD = 0.035
BLANK_CONTRAST = 0.005
#: margin on the data's information limit (spots off every lattice beyond it are refused)
LIMIT_MARGIN = 1.1
#: a jump in |g| of the lattice's reflections by more than this marks the end of its signal
GAP_RATIO = 1.5
#: a maximum whose second moments are this many times longer than wide, along the radius, is a streak
STREAK_ELONGATION = 4.0
#: a compact maximum less than this many times the power of the radial ridge it sits on is a bump on a streak
STREAK_BUMP = 30.0
#: the bump-on-a-ridge test applies to spacings above this (nm): edge ripples, not atomic planes
RIDGE_MIN_D_NM = 2.0


def empty_rejected() -> pd.DataFrame:
    """An empty ``rejected_spots`` table."""
    return pd.DataFrame({c: pd.Series(dtype=object if c == "reason" else float) for c in REJECTED_COLUMNS})


def rejected_table(G: np.ndarray, snr: np.ndarray, reasons: list) -> pd.DataFrame:
    """The ``rejected_spots`` table of the spots whose reason is not None (strongest first)."""
    rows = [i for i, r in enumerate(reasons) if r]
    if not rows:
        return empty_rejected()
    g = np.asarray(G, float)[rows]
    gn = np.linalg.norm(g, axis=1)
    df = pd.DataFrame(
        {
            "gx_inv_nm": g[:, 0],
            "gy_inv_nm": g[:, 1],
            "d_angstrom": 10.0 / gn,
            "azimuth_deg": np.degrees(np.arctan2(g[:, 1], g[:, 0])),
            "snr": np.asarray(snr, float)[rows],
            "reason": [reasons[i] for i in rows],
        }
    )
    return df.sort_values("snr", ascending=False, kind="stable").reset_index(drop=True)


def electron_wavelength_pm(kv: float) -> float:
    """Relativistic electron wavelength (pm) at ``kv`` kilovolts.

    >>> round(electron_wavelength_pm(200.0), 3), round(electron_wavelength_pm(80.0), 3)
    (2.508, 4.176)
    """
    v = kv * 1e3
    return 1226.39 / math.sqrt(v * (1 + 0.97848e-6 * v))


def beam_limit_angstrom(kv: float | None, aperture_rad: float = APERTURE_RAD) -> float | None:
    """Finest spacing an image can transfer at ``kv``: ``lambda / (2 alpha)`` in Å (None without ``kv``).

    >>> round(beam_limit_angstrom(80.0), 3), round(beam_limit_angstrom(300.0), 3)
    (0.597, 0.281)
    """
    if not kv or not np.isfinite(kv) or kv <= 0:
        return None
    return electron_wavelength_pm(kv) / 100.0 / (2.0 * aperture_rad)


def is_featureless(data: np.ndarray) -> str | None:
    """Why an image is blank/featureless (a reason text), or None.

    Blank: the robust range (0.5-99.5 percentiles) is below ``BLANK_CONTRAST``
    of the level, e.g. a detector reading its offset with no specimen.

    >>> rng = np.random.default_rng(0)
    >>> is_featureless(10000 + rng.integers(0, 10, (64, 64))) is not None
    True
    >>> is_featureless(rng.poisson(50, (64, 64)).astype(float)) is None
    True
    >>> is_featureless(np.zeros((64, 64)))
    'blank image (99 % of its pixels are 0): not a lattice'
    """
    d = np.asarray(data, float)
    v = d[:: max(1, d.shape[0] // 256), :: max(1, d.shape[1] // 256)] if d.ndim == 2 else d
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    lo, med, hi = np.percentile(v, [0.5, 50, 99.5])
    if hi == lo:
        return f"blank image (99 % of its pixels are {med:.6g}): not a lattice"
    level = abs(med)
    if level > 0 and hi - lo < BLANK_CONTRAST * level and hi - lo < 0.5 * level:
        return f"blank/featureless image (contrast {100 * (hi - lo) / level:.2g} % of its level): not a lattice"
    return None


def ring_profile(P: np.ndarray, shape):
    """Median power per ring of |f| (cycles/px) inside the Nyquist box: (f of each ring, median).

    Rings are one bin wide (``1 / min(M, N)`` cycles/px); spectra larger than
    1024 bins per axis are sampled on a strided grid, with rings as wide as the
    stride.
    """
    from ._kernels import ring_median_nb

    M, N = shape
    st = max(1, math.ceil(max(M, N) / 1024))
    fy = np.fft.fftfreq(M)[::st].astype(np.float32)[:, None]
    fx = (np.arange(0, P.shape[1], st, dtype=np.float32) / N)[None, :]
    step = st / min(M, N)
    ring = np.floor(np.sqrt(fy * fy + fx * fx) / step).astype(np.int64)
    ring[(np.abs(fy) >= 0.47) | (np.abs(fx) >= 0.47) | (ring < 2)] = -1
    n = int(0.47 / step)
    ring[ring >= n] = -1
    meds = ring_median_nb(np.ascontiguousarray(P[::st, ::st], dtype=np.float64), ring, n, 512)
    return (np.arange(n) + 0.5) * step, meds


def spectral_floor_limit(P: np.ndarray, shape, pixel_size_nm, profile=None) -> float | None:
    """|g| (1/nm) beyond which the azimuthal median of the power stays at its noise floor, or None.

    The floor is the median level of the outer 15 % of the rings; the limit is
    where the profile, coming from low |g|, last exceeds 1.25 x that floor. An
    image whose profile is still falling at the Nyquist border (no flat tail over
    at least 20 % of the radii) has no measurable floor: None.
    """
    f, med = profile if profile is not None else ring_profile(P, shape)
    ok = np.isfinite(med)
    if ok.sum() < 20:
        return None
    f, med = f[ok], med[ok]
    k = max(5, len(med) // 5)
    sm = np.convolve(med, np.ones(5) / 5, "same")
    floor = float(np.median(med[-max(3, int(0.15 * len(med))) :]))
    if floor <= 0:
        return None
    above = np.nonzero(sm[:-2] > 1.25 * floor)[0]
    last = int(above.max()) + 1 if len(above) else 0
    if len(med) - last < k:  # no flat tail
        return None
    py, px = pixel_size_nm
    return float(f[last] / max(py, px))


def information_limit(G: np.ndarray, on_lattice: np.ndarray, P: np.ndarray, shape, pixel_size_nm, profile=None):
    """The data's information limit (1/nm) and how it was found: (g_limit or None, text)."""
    g_floor = spectral_floor_limit(P, shape, pixel_size_nm, profile)
    gn = np.linalg.norm(np.asarray(G, float), axis=1)
    g_lat = _lattice_reach(gn[np.asarray(on_lattice, bool)])
    if g_floor is None and g_lat is None:
        return None, ""
    if g_lat is not None and (g_floor is None or g_lat >= g_floor):
        return g_lat, f"the finest lattice reflection ({10 / g_lat:.3g} Å)"
    return g_floor, f"where the spectrum falls to its noise floor ({10 / g_floor:.3g} Å)"


def _lattice_reach(gn: np.ndarray) -> float | None:
    """Largest |g| of a lattice's reflections before the first gap of more than ``GAP_RATIO`` in |g|.

    A lattice shows its orders up to the information limit without large gaps
    (beyond its first orders); an "indexed" spot far past a gap is a chance
    coincidence of noise with a high-order node.
    """
    if len(gn) == 0:
        return None
    g = np.sort(gn)
    start = 2.0 * g[0] * 1.5  # the first orders may be sparse
    for a, b in itertools.pairwise(g):
        if a >= start and b > GAP_RATIO * a:
            return float(a)
    return float(g[-1])


class _PowerAt:
    """Power at integer full-plane bins (iy, ix) (any sign) of a half-plane spectrum.

    With the raw rfft2 ``U`` of the rectangle, the power of its Hann-windowed
    transform, exactly, from the 3 x 3 stencil ``(-1/4, 1/2, -1/4)`` per axis (no
    second FFT): the rectangular window's leakage of a strong spot on an axis
    runs along that axis, i.e. radially, like a streak; Hann's does not. Without
    ``U`` (a disk or mask: already tapered), the power ``P`` itself.
    """

    def __init__(self, P: np.ndarray, U, shape):
        self.P, self.U, (self.M, self.N) = P, U, shape
        #: ratio of a white background's Hann power to its rectangular power: (3/8)^2
        self.scale = 0.140625 if U is not None else 1.0

    def _full(self, A, iy, ix, conj):
        M, N = self.M, self.N
        xm = np.mod(ix, N)
        mirror = xm > N // 2
        yy = np.where(mirror, -iy, iy) % M
        xx = np.where(mirror, N - xm, xm)
        v = A[yy, xx]
        return np.where(mirror, np.conj(v), v) if conj else v

    def __call__(self, iy, ix) -> np.ndarray:
        iy, ix = np.asarray(iy, np.int64), np.asarray(ix, np.int64)
        if self.U is None:
            return self._full(self.P, iy, ix, False).astype(float)
        c = (-0.25, 0.5, -0.25)
        acc = np.zeros(iy.shape, complex)
        for a in (-1, 0, 1):
            for b in (-1, 0, 1):
                acc += c[a + 1] * c[b + 1] * self._full(self.U, iy + a, ix + b, True)
        return np.abs(acc) ** 2


def _streak(power_at: _PowerAt, fy: float, fx: float, profile, d_nm: float = np.inf) -> bool:
    """True when the maximum at (fy, fx) (cycles/px) is elongated along its radial direction (a streak).

    The second moments of the background-subtracted power in the 5 x 5 bins
    around the maximum (on the Hann-windowed spectrum, whose spots are compact
    and isotropic in bins) give its shape: a streak (the transform of a
    straight edge, running through the origin) is more than ``STREAK_ELONGATION``
    times longer than wide, along the radius, or, for spacings above
    ``RIDGE_MIN_D_NM`` (the ripples of an object's outline), a compact bump less
    than ``STREAK_BUMP`` times above the radial ridge it sits on. An atomic-scale
    spot on a ridge (scan lines along an axis, a row of satellites) is left alone.
    """
    M, N = power_at.M, power_at.N
    y, x = fy * M, fx * N  # bins
    r = math.hypot(y, x)
    if r < 3:
        return False
    f_step, meds = profile
    meds = meds * power_at.scale
    k = int(math.hypot(fy, fx) / f_step)
    if k >= len(meds) or not np.isfinite(meds[k]) or meds[k] <= 0:
        return False
    bg = float(meds[k])
    cy, cx = round(y), round(x)
    yy, xx = np.mgrid[-2:3, -2:3]
    w = np.clip(power_at(cy + yy, cx + xx) - bg, 0.0, None)
    tot = float(w.sum())
    if tot <= 0:
        return False
    my, mx = (w * yy).sum() / tot, (w * xx).sum() / tot
    cyy = (w * (yy - my) ** 2).sum() / tot
    cxx = (w * (xx - mx) ** 2).sum() / tot
    cxy = (w * (yy - my) * (xx - mx)).sum() / tot
    evals, evecs = np.linalg.eigh(np.array([[cyy, cxy], [cxy, cxx]]))
    lo, hi = max(float(evals[0]), 1e-3), float(evals[1])
    major = evecs[:, 1]  # (y, x)
    radial = abs(major[0] * y + major[1] * x) / r
    if hi / lo > STREAK_ELONGATION and radial > math.cos(math.radians(20.0)):
        return True
    if d_nm <= RIDGE_MIN_D_NM:
        return False  # an atomic-scale spot on a ridge (scan lines along an axis, satellites) is left alone
    # a compact bump on a radial ridge: the power along the radial line through it (outside the spot's Hann
    # main lobe) stays > 3x the azimuthal median and the maximum is not far above that ridge (at large
    # spacings the low-frequency spectrum of an object's outline is all ridges)
    offs = np.array([o for o in np.linspace(-0.4 * r, 0.4 * r, 33) if abs(o) >= 2.5 and r + o >= 2])
    if len(offs) < 6:
        return False
    iy = np.rint((r + offs) * y / r).astype(np.int64)
    ix = np.rint((r + offs) * x / r).astype(np.int64)
    kk = (np.hypot(iy / M, ix / N) / f_step).astype(np.int64)
    use = (np.abs(iy) < M // 2) & (np.abs(ix) <= N // 2) & (kk < len(meds))
    iy, ix, kk = iy[use], ix[use], kk[use]
    ref = meds[kk]
    good = np.isfinite(ref) & (ref > 0)
    if good.sum() < 6:
        return False
    m_rad = float(np.median(power_at(iy[good], ix[good]) / ref[good]))
    peak = float(w[2, 2]) / bg + 1.0
    return m_rad > 3.0 and peak < STREAK_BUMP * m_rad


def check_spots(
    G: np.ndarray,
    f_px: np.ndarray,
    P: np.ndarray,
    shape,
    pixel_size_nm,
    data=None,
    mode=None,
    beam_energy_kv=None,
    U=None,
    profile=None,
) -> tuple[list, list]:
    """Per spot, the reason it is implausible as a lattice reflection (None when plausible).

    Parameters
    ----------
    G : ndarray (n, 2)
        Spot vectors (gx, gy), 1/nm.
    f_px : ndarray (n, 2)
        The same in cycles/px, (fx, fy).
    P : ndarray
        Half-plane power spectrum (rfft2 layout) of the region.
    shape : (int, int)
        Region shape.
    pixel_size_nm : (float, float)
    data : ndarray, optional
        The region's pixels (for the blank-image test).
    U : ndarray, optional
        The raw rfft2 of the rectangle (its Hann-windowed power, by a stencil, is
        used for the streak test); None for a disk or mask.
    profile : (f, median), optional
        :func:`ring_profile` of ``P`` (computed when not given).
    mode : str, optional
        Acquisition mode ('STEM', 'HAADF', ...: the scan-line test applies to scans).
    beam_energy_kv : float, optional

    Returns
    -------
    (reasons, notes)
        A reason text or None per spot, and warnings summarising them.

    Examples
    --------
    >>> P = np.ones((64, 33))
    >>> G = np.array([[0.01, 0.0], [2.5, 0.0]])  # 100 nm, 4 Å
    >>> reasons, notes = check_spots(G, G * 0.02, P, (64, 64), (0.02, 0.02))
    >>> reasons[0].startswith("spacing"), reasons[1]
    (True, None)
    """
    G = np.asarray(G, float)
    f_px = np.asarray(f_px, float)
    n = len(G)
    reasons: list = [None] * n
    notes: list = []
    if n == 0:
        return reasons, notes
    blank = is_featureless(data) if data is not None else None
    if blank:
        notes.append(f"{n} spot(s) refused: {blank}")
        return [blank] * n, notes
    gn = np.linalg.norm(G, axis=1)
    d_nm = 1.0 / gn
    period_px = 1.0 / np.hypot(f_px[:, 0], f_px[:, 1])
    lim = beam_limit_angstrom(beam_energy_kv)
    f_ring, meds = profile if profile is not None else ring_profile(P, shape)
    prof = (f_ring[1] - f_ring[0], meds)
    power_at = _PowerAt(P, U if U is not None and U.shape == P.shape else None, shape)
    for i in range(n):
        if d_nm[i] > MAX_D_NM:
            reasons[i] = f"spacing {10 * d_nm[i]:.4g} Å above {MAX_D_NM:g} nm: not a lattice (gradient, edge or drift)"
        elif period_px[i] < MIN_PERIOD_PX:
            reasons[i] = f"period {period_px[i]:.2f} px below {MIN_PERIOD_PX:g} px"
        elif lim is not None and 10 * d_nm[i] < lim:
            reasons[i] = (
                f"spacing {10 * d_nm[i]:.3g} Å below the information limit at {beam_energy_kv:g} kV "
                f"({lim:.3g} Å = lambda / (2 x {1e3 * APERTURE_RAD:g} mrad))"
            )
        elif _streak(power_at, f_px[i, 1], f_px[i, 0], prof, d_nm[i]):
            reasons[i] = "streak (elongated along its radial direction: an edge, not a lattice)"
    scan = str(mode or "").upper() in ("STEM", "HAADF", "ADF", "ABF", "BF-STEM", "DF")
    if scan:
        M, N = shape
        on_axis = (np.abs(f_px[:, 0]) * N < 0.5) | (np.abs(f_px[:, 1]) * M < 0.5)
        live = np.array([r is None for r in reasons])
        if live.any() and on_axis[live].all():
            for i in np.nonzero(live & on_axis)[0]:
                reasons[i] = "scan-line periodicity (on the kx = 0 / ky = 0 axis, no spot off the axes)"
    groups: dict = {}
    for r in reasons:
        if r:
            if r.startswith("streak"):  # refused (or not) once the lattice is known: measure_lattice says so
                continue
            kind = (
                r.split(" (")[0]
                if r.startswith("scan-line")
                else ("below the information limit" if "information limit" in r else r.split(":")[0].split(" ")[0])
            )
            groups[kind] = groups.get(kind, 0) + 1
    for kind, cnt in groups.items():
        label = {"spacing": "spacing above 50 nm", "period": "period below 2 px"}.get(kind, kind)
        notes.append(f"{cnt} spot(s) refused as not a lattice reflection: {label} (see rejected_spots)")
    return reasons, notes


def beyond_limit(G: np.ndarray, free: np.ndarray, g_limit: float | None, how: str) -> list:
    """Reasons for the ``free`` (off-lattice) spots beyond ``LIMIT_MARGIN`` x the information limit."""
    out: list = [None] * len(G)
    if g_limit is None:
        return out
    gn = np.linalg.norm(np.asarray(G, float), axis=1)
    for i in np.nonzero(np.asarray(free, bool) & (gn > LIMIT_MARGIN * g_limit))[0]:
        out[i] = (
            f"spacing {10 / gn[i]:.3g} Å beyond the information limit the data support, "
            f"{10 / g_limit:.3g} Å ({how}): noise, not a lattice"
        )
    return out
