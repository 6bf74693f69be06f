"""Pixel noise of an image: ``variance = offset + gain * intensity``, from Immerkaer's operator on tiles."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..micrograph import Micrograph


@dataclass
class NoiseModel:
    """Pixel noise of an image: ``variance = offset + gain * intensity``.

    ``counts`` is True when the pixel values are integer multiples of a
    quantum (``gain`` = quantum) with Poisson-like variance; the fit then
    weights pixels by the model's own variance. Otherwise the per-group
    residual variance is used.
    """

    sigma: float
    counts: bool
    gain: float
    offset: float
    quantum: float | None

    def to_dict(self) -> dict:
        return {
            "sigma": self.sigma,
            "counts": self.counts,
            "gain": self.gain,
            "offset": self.offset,
            "quantum": self.quantum,
        }


def _immerkaer_tiles(img: np.ndarray, tile: int = 32, max_tiles: int = 400, invalid=None):
    """Per-tile (mean, noise variance) with Immerkaer's Laplacian-difference estimator (tiles with an
    ``invalid`` pixel left out).
    """
    h, w = img.shape
    ny, nx = max(1, h // tile), max(1, w // tile)
    ys = np.linspace(0, h - min(tile, h), ny).astype(int)
    xs = np.linspace(0, w - min(tile, w), nx).astype(int)
    step = max(1, int(math.ceil(math.sqrt(ny * nx / max_tiles))))
    means, vars_ = [], []
    for y in ys[::step]:
        for x in xs[::step]:
            t = img[y : y + tile, x : x + tile].astype(np.float64)
            if t.shape[0] < 3 or t.shape[1] < 3:
                continue
            if invalid is not None and invalid[y : y + tile, x : x + tile].any():
                continue
            lap = (
                t[:-2, :-2]
                + t[:-2, 2:]
                + t[2:, :-2]
                + t[2:, 2:]
                - 2 * (t[1:-1, :-2] + t[1:-1, 2:] + t[:-2, 1:-1] + t[2:, 1:-1])
                + 4 * t[1:-1, 1:-1]
            )
            # Immerkaer 1996: var = mean(lap^2) / 36 for white noise
            vars_.append(float(np.mean(lap * lap)) / 36.0)
            means.append(float(t.mean()))
    return np.array(means), np.array(vars_)


def _quantum(img: np.ndarray, invalid=None) -> float | None:
    """The step of which every pixel value is an integer multiple, or None (``invalid`` pixels ignored)."""
    sample = img.ravel()[:: max(1, img.size // 200000)].astype(np.float64)
    if invalid is not None:
        sample = sample[~invalid.ravel()[:: max(1, img.size // 200000)]]
    if sample.size < 3:
        return None
    if sample.min() < 0:
        return None
    u = np.unique(sample)
    if u.size < 3:
        return None
    d = np.diff(u)
    q = float(d.min())
    if q <= 0:
        return None
    k = u / q
    if np.max(np.abs(k - np.rint(k))) > 1e-3 * max(1.0, 1.0):
        return None
    return q


def estimate_noise_model(image, invalid=None) -> NoiseModel:
    """Pixel-noise model of an image, estimated from the data.

    The variance of each 32x32 tile (Immerkaer's estimator, which ignores smooth
    structure) is regressed on the tile mean. When the pixel values are integer
    multiples of a quantum ``q`` and the variance is ``q * mean`` to within a
    factor 1.6 (quietest half of the tiles), the image is taken as (scaled)
    Poisson counts. Otherwise ``variance = offset + gain * I`` is fitted to the
    lower third of the tiles of each intensity bin (structure only inflates the
    estimator); ``offset`` may be negative (a detector dark level:
    ``gain * (I - I_dark)``) as long as the variance stays positive.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> nm = estimate_noise_model(rng.poisson(50.0, (256, 256)).astype(np.uint16))
    >>> nm.counts, round(nm.gain, 1)
    (True, 1.0)
    """
    img = np.asarray(image.data if isinstance(image, Micrograph) else image)
    if invalid is None and isinstance(image, Micrograph):
        invalid = image.invalid_mask
    m, v = _immerkaer_tiles(img, invalid=invalid)
    if m.size == 0:
        sd = float(np.std(img if invalid is None else img[~invalid]))
        return NoiseModel(sigma=sd, counts=False, gain=0.0, offset=sd * sd, quantum=None)
    # structure inflates the estimator: keep the quieter tiles
    keep = v <= np.quantile(v, 0.5) if m.size > 8 else np.ones(m.size, bool)
    sigma = float(math.sqrt(max(np.median(v[keep]), 0.0)))
    q = _quantum(img, invalid)
    counts = False
    gain = 0.0
    offset = sigma * sigma
    if q is not None and np.all(m > 0):
        ratio = float(np.median(v[keep] / m[keep]))
        if 0.6 * q <= ratio <= 1.6 * q:
            counts = True
            gain, offset = q, 0.0
    if not counts and m.size > 8 and np.ptp(m) > 0:
        # variance against intensity: in each intensity bin the lower third of the tiles (structure only
        # ever inflates the estimator); selecting the quietest tiles overall would drop the bright ones,
        # whose noise is larger by nature. Detectors add a dark level, so ``offset`` may be negative
        # (variance = gain * (I - I_dark)); it only has to leave a positive variance over the image.
        nb = int(min(12, max(3, m.size // 12)))
        edges = np.unique(np.quantile(m, np.linspace(0, 1, nb + 1)))
        which = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, len(edges) - 2)
        bm, bv, bn = [], [], []
        for b in range(len(edges) - 1):
            sel = which == b
            if sel.sum() >= 4:
                vb = v[sel]
                low = vb <= np.quantile(vb, 1.0 / 3.0)
                bm.append(float(np.median(m[sel][low])))
                bv.append(float(np.median(vb[low])))
                bn.append(float(sel.sum()))
        if len(bm) >= 3 and np.ptp(bm) > 0:
            bm, bv, bn = np.array(bm), np.array(bv), np.array(bn)
            A = np.column_stack([np.ones(len(bm)), bm]) * np.sqrt(bn)[:, None]
            coef, *_ = np.linalg.lstsq(A, bv * np.sqrt(bn), rcond=None)
            if coef[1] > 0 and coef[0] + coef[1] * float(bm.min()) > 0.1 * sigma * sigma:
                offset, gain = float(coef[0]), float(coef[1])
    return NoiseModel(sigma=sigma, counts=counts, gain=gain, offset=offset, quantum=q)
