"""``--mode auto``: which analysis an image gets, from its metadata or, failing that, from its pixels.

The rule, in order:

1. ``Micrograph.mode`` names a dark-field STEM detector or STEM (``HAADF``,
   ``ADF``, ``STEM``...): **particles** (bright particles on a dark support is
   what HAADF is used for), unless the image resolves a lattice (periodicity
   score at least :data:`PERIODICITY_THRESHOLD`, as in atomic-resolution STEM
   of a crystal): then **lattice** only, because the bright blobs of such an
   image are atomic columns (0.1-0.3 nm), not particles. ``mode='both'`` runs
   both anyway.
2. ``Micrograph.mode`` is ``TEM`` (HRTEM) or a bright-field detector (``BF``,
   ``ABF``): **lattice**.
3. No mode in the metadata: the image decides. :func:`periodicity_score`
   measures how far the strongest peak of the image's averaged power spectrum
   stands above the spectrum's background at the same spatial frequency. A
   crystal lattice (fringes, atomic columns) gives sharp peaks hundreds of
   times the background; particles on a support, noise and amorphous
   material give a smooth spectrum (score of a few). A score of at least
   :data:`PERIODICITY_THRESHOLD` means **lattice**, else **particles**.

In 1 and 3, an image chosen for particles whose field of view cannot hold a
particle of at least :data:`MIN_PARTICLE_DIAMETER_NM` (a few nm across,
:func:`too_small_for_particles`) gets **lattice** instead: it is atomic-resolution work.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "PERIODICITY_THRESHOLD",
    "MIN_PARTICLE_DIAMETER_NM",
    "periodicity_score",
    "choose_analysis",
    "choose_analyses",
    "too_small_for_particles",
    "ANALYSES",
]

#: the analyses a batch can run on a signal
ANALYSES = ("lattice", "particles")

#: periodicity score at or above which an image without acquisition mode is treated as a lattice image
PERIODICITY_THRESHOLD = 10.0

#: smallest particle diameter the particle analysis looks for by default (smaller bright blobs are atomic
#: columns); an image whose field of view cannot hold one (see :func:`too_small_for_particles`) gets lattice
MIN_PARTICLE_DIAMETER_NM = 1.0

_DARK_FIELD_MODES = ("HAADF", "ADF", "DF", "STEM")
_BRIGHT_FIELD_MODES = ("BF", "ABF", "TEM", "HRTEM")


def _hann2d(n: int) -> np.ndarray:
    w = np.hanning(n)
    return np.outer(w, w)


def periodicity_score(data, *, tile: int = 256, max_tiles: int = 16) -> float:
    """Strength of the strongest periodic component of an image.

    The image is cut into up to ``max_tiles`` half-overlapping square tiles
    (side ``tile``, or the largest power of two that fits); their
    Hann-windowed power spectra are averaged (Welch) and smoothed over 3 x 3
    frequency bins (5 x 5 when fewer than 4 tiles fit), each bin is
    divided by the median of its ring (same spatial frequency), and the score
    is the largest ratio between 4 % and 95 % of the Nyquist frequency.

    Parameters
    ----------
    data : ndarray
        2-D image.
    tile : int
        Tile side in pixels.
    max_tiles : int
        Tiles averaged at most (spread evenly over the image).

    Returns
    -------
    float
        About 2-6 for noise, particles or amorphous material; tens to
        thousands for a resolved crystal lattice (measured on synthetic
        images and the real files of ``../shared/realdata``: particles and
        noise 1.9-5.8, real lattice images 33-200).

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:256, :256]
    >>> rng = np.random.default_rng(0)
    >>> fringes = np.cos(2 * np.pi * x / 7.3) + rng.normal(0, 1, (256, 256))
    >>> periodicity_score(fringes) > PERIODICITY_THRESHOLD
    True
    >>> periodicity_score(rng.normal(0, 1, (256, 256))) < PERIODICITY_THRESHOLD
    True
    """
    img = np.asarray(data, dtype=np.float64)
    h, w = img.shape
    side = int(min(tile, 2 ** int(np.floor(np.log2(min(h, w))))))
    if side < 16:
        return 0.0
    step = side // 2
    ys = np.arange(0, h - side + 1, step)
    xs = np.arange(0, w - side + 1, step)
    corners = [(y, x) for y in ys for x in xs]
    if len(corners) > max_tiles:
        pick = np.linspace(0, len(corners) - 1, max_tiles).round().astype(int)
        corners = [corners[i] for i in pick]
    win = _hann2d(side)
    power = np.zeros((side, side))
    for y, x in corners:
        t = img[y : y + side, x : x + side]
        t = (t - t.mean()) * win
        power += np.abs(np.fft.fft2(t)) ** 2
    power = np.fft.fftshift(power / len(corners))
    # few tiles -> noisier spectrum -> smooth over more bins (keeps noise-only scores at a few)
    power = ndi.uniform_filter(power, size=3 if len(corners) >= 4 else 5, mode="wrap")
    c = side // 2
    yy, xx = np.mgrid[:side, :side]
    r = np.hypot(yy - c, xx - c)
    rbin = np.rint(r).astype(int)
    lo, hi = max(3, int(0.04 * c)), int(0.95 * c)
    ring = (rbin >= lo) & (rbin <= hi)
    if not ring.any():
        return 0.0
    medians = np.zeros(rbin.max() + 1)
    for k in range(lo, hi + 1):
        sel = rbin == k
        if sel.any():
            medians[k] = np.median(power[sel])
    bg = medians[rbin[ring]]
    vals = power[ring]
    ok = bg > 0
    if not ok.any():
        return 0.0
    return float(np.max(vals[ok] / bg[ok]))


def too_small_for_particles(mg) -> bool:
    """Whether a calibrated image is too small to hold a particle of the default search range.

    The particle analysis looks, by default, for diameters from max(3 px,
    :data:`MIN_PARTICLE_DIAMETER_NM`) to a quarter of the shorter side
    (:func:`latticefit.particles.default_diameter_range_nm`); when that range is
    empty the image is a few nm across, i.e. atomic-resolution work.

    Examples
    --------
    >>> import numpy as np
    >>> from latticefit import Micrograph
    >>> too_small_for_particles(Micrograph(np.zeros((128, 128)), pixel_size_nm=(0.025, 0.025)))  # 3.2 nm across
    True
    >>> too_small_for_particles(Micrograph(np.zeros((128, 128)), pixel_size_nm=(0.4, 0.4)))
    False
    """
    if mg.pixel_size_nm is None:
        return False
    px = float(max(mg.pixel_size_nm))
    return max(3.0 * px, MIN_PARTICLE_DIAMETER_NM) >= min(mg.data.shape) / 4.0 * float(min(mg.pixel_size_nm))


def _fov_text(mg) -> str:
    return f"field of view {min(mg.data.shape) * float(min(mg.pixel_size_nm)):.3g} nm"


def choose_analyses(mg) -> list[tuple[str, str]]:
    """Every analysis ``--mode auto`` runs on one image, each with its reason.

    Always one analysis: :func:`choose_analysis` decides. (A list, so that a
    rule running several analyses on one image needs no new interface.)

    Examples
    --------
    >>> import numpy as np
    >>> from latticefit import Micrograph
    >>> y, x = np.mgrid[:256, :256]
    >>> columns = Micrograph(np.cos(2 * np.pi * x / 9.0) * np.cos(2 * np.pi * y / 9.0), mode="HAADF")
    >>> [a for a, _ in choose_analyses(columns)]  # atomic-resolution HAADF: columns, not particles
    ['lattice']
    """
    return [choose_analysis(mg)]


def choose_analysis(mg) -> tuple[str, str]:
    """The analysis ``--mode auto`` runs on one image, and why.

    Parameters
    ----------
    mg : Micrograph
        The image (its ``mode`` and, when that is None, its pixels decide).

    Returns
    -------
    (str, str)
        ``('lattice' | 'particles', reason)``; the reason is written to the
        ``analysis_reason`` column of ``summary.csv``.

    Examples
    --------
    >>> import numpy as np
    >>> from latticefit import Micrograph
    >>> choose_analysis(Micrograph(np.zeros((64, 64)), mode="HAADF"))
    ('particles', 'metadata: HAADF; image: periodicity 0.0 < 10')
    >>> choose_analysis(Micrograph(np.zeros((64, 64)), mode="TEM"))
    ('lattice', 'metadata: TEM')
    """
    mode = (mg.mode or "").strip()
    m = mode.upper()
    if m:
        if m in _BRIGHT_FIELD_MODES:
            return "lattice", f"metadata: {mode}"
        if m in _DARK_FIELD_MODES or "HAADF" in m or "STEM" in m:
            score = periodicity_score(mg.data)
            if score >= PERIODICITY_THRESHOLD:
                # atomic-resolution STEM: every bright blob is an atomic column, not a particle
                return "lattice", (
                    f"metadata: {mode}; image: periodicity {score:.0f} >= {PERIODICITY_THRESHOLD:g}: "
                    "atomic columns, particles not run"
                )
            if too_small_for_particles(mg):
                return "lattice", (
                    f"metadata: {mode}; image: periodicity {score:.1f} < {PERIODICITY_THRESHOLD:g} "
                    f"but {_fov_text(mg)} holds no particle >= {MIN_PARTICLE_DIAMETER_NM:g} nm"
                )
            return "particles", f"metadata: {mode}; image: periodicity {score:.1f} < {PERIODICITY_THRESHOLD:g}"
        if "TEM" in m:
            return "lattice", f"metadata: {mode}"
    score = periodicity_score(mg.data)
    if score >= PERIODICITY_THRESHOLD:
        return "lattice", f"image: periodicity {score:.0f} >= {PERIODICITY_THRESHOLD:g}"
    if too_small_for_particles(mg):
        return "lattice", (
            f"image: periodicity {score:.1f} < {PERIODICITY_THRESHOLD:g} but {_fov_text(mg)} "
            f"holds no particle >= {MIN_PARTICLE_DIAMETER_NM:g} nm"
        )
    return "particles", f"image: periodicity {score:.1f} < {PERIODICITY_THRESHOLD:g}"
