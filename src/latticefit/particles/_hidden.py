"""Hidden dots: significant LoG maxima of the fit residual beside a fitted particle like them.

A dot pressed against a brighter neighbour may show no maximum in the image at any scale: the neighbour's
flank outranks it (a dim 7 nm dot against a bright 14 nm one on the real JEOL file; about 5 % of the 5 px
dots at 20 counts/px in a crowd). Once the neighbour is fitted and subtracted, the hidden dot is an ordinary
blob of the residual. :func:`residual_seeds` renders the fitted spheres on the detection grid, takes the
LoG of ``coarse - model`` at the population's scales, and returns the significant maxima that

- lie outside every fitted particle's disc (``HIDDEN_OVERLAP``; the neighbour's light is subtracted),
- touch a fitted particle of similar size and significance (:func:`latticefit.particles._crowd.free_candidates`),

as new seeds; :func:`latticefit.particles._pipeline.find_particles` then fits again with them. The residual's
LoG noise is measured on the residual itself (robust RMS per scale), and the threshold is the detection's.
"""

from __future__ import annotations

import numpy as np

from . import _crowd as C
from . import _kernels as K
from ._profile_kernels import sphere_profile_table
from ._pyramid import octave_factors

__all__ = [
    "HIDDEN_MAX_COVERED",
    "HIDDEN_MIN_HEIGHT",
    "HIDDEN_OVERLAP",
    "covered_fraction",
    "failed_covered",
    "local_refit",
    "partition_by_model",
    "render_spheres",
    "residual_seeds",
]

#: a hidden dot's fitted height is at least this fraction of the median particle's
HIDDEN_MIN_HEIGHT = 0.5
#: ... and before its fit, its residual (mean over the inner half radius) this fraction of the median's
PRESCREEN_HEIGHT = 0.25

#: scales searched: within this factor of the LoG scale of the median fitted radius
SCALE_SPAN = 1.3
#: fewest fitted particles for a population whose scale and strength define "like"
MIN_FITS = 3
#: a hidden dot's centre lies outside its fitted neighbours' discs (``r_i + HIDDEN_OVERLAP * r_c``; the
#: detection's pruning rule asks 0.4): the neighbour's light is subtracted, so a dot whose projection overlaps
#: it shows in the residual (a 8 nm dot 6.9 px from the centre of a 14 nm one, radius 5.8 px, on the real
#: JEOL file); its fit is then kept unless its centre falls inside the neighbour's fitted disc
HIDDEN_OVERLAP = 0.0


def render_spheres(shape, x, y, r, h, s):
    """Sum of blurred projected spheres ``h/2 * g(rho / r, s / r)`` on a grid of ``shape`` (pixel centres at integers).

    One window of the largest reach for all spheres, one table lookup and one weighted ``bincount``.

    Examples
    --------
    >>> m = render_spheres((21, 21), np.array([10.0]), np.array([10.0]), np.array([5.0]), np.array([2.0]),
    ...                    np.array([0.5]))
    >>> round(float(m[10, 10]), 2), float(m[10, 20])
    (1.98, 0.0)
    """
    x, y, r, h, s = (np.asarray(a, float) for a in (x, y, r, h, s))
    if not x.size:
        return np.zeros(shape)
    w = int(np.ceil(float(np.max(r + 4.0 * s)))) + 1
    off = np.arange(-w, w + 1)
    yy = np.rint(y)[:, None, None].astype(np.int64) + off[None, :, None]
    xx = np.rint(x)[:, None, None].astype(np.int64) + off[None, None, :]
    yy, xx = np.broadcast_arrays(yy, xx)
    rho = np.hypot(xx - x[:, None, None], yy - y[:, None, None]) / r[:, None, None]
    inside = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1]) & (rho < 1.0 + 4.0 * (s / r)[:, None, None])
    val = 0.5 * h[:, None, None] * sphere_profile_table(rho, np.broadcast_to((s / r)[:, None, None], rho.shape))
    flat = (yy * shape[1] + xx)[inside]
    return np.bincount(flat, weights=val[inside], minlength=shape[0] * shape[1]).reshape(shape)


def _model_on_grid(fit, f, shape):
    """The fitted spheres on the detection grid (blocks of ``f`` px: the block mean adds ``(f² - 1)/12``)."""
    ok = fit.ok & np.isfinite(fit.r) & np.isfinite(fit.h) & (fit.h > 0)
    s = np.sqrt(fit.sigma_px**2 + 1.0 / 12.0 + (f * f - 1.0) / 12.0) / f
    return render_spheres(
        shape,
        (fit.x[ok] + 0.5) / f - 0.5,
        (fit.y[ok] + 0.5) / f - 0.5,
        fit.r[ok] / f,
        fit.h[ok],
        np.full(int(ok.sum()), s),
    )


def _whitened_residual(img, fit, det, noise, d: int):
    """``image - background - fitted spheres`` on the detection grid binned by ``d``.

    Returns it divided by the noise sigma (float32, for the LoG) and as it is (for the candidates' heights).
    """
    f, bg = det["f"], np.asarray(det["background"], np.float32)
    if d > 1:
        bg = K.bin_image(bg, d)
    g = f * d
    raw = det.get("grid_raw") if f > 1 else np.asarray(img, np.float32)
    if raw is None:
        raw = K.bin_image(np.asarray(img, np.float32), f)
    raw = K.bin_image(raw, d) if d > 1 else raw
    raw = raw[: bg.shape[0], : bg.shape[1]]
    bg = bg[: raw.shape[0], : raw.shape[1]]
    model = _model_on_grid(fit, g, raw.shape)
    var = np.maximum(noise.offset + noise.gain * np.maximum(bg + model, 0.0), 1e-12) / (g * g)
    lin = np.nan_to_num(raw - bg - model)
    return (lin / np.sqrt(var)).astype(np.float32), lin


def _disc_means(a, i, j, rad):
    """Mean of ``a`` within ``rad`` (at least the 3 x 3 block) of each grid point ``(i, j)``.

    Examples
    --------
    >>> a = np.zeros((9, 9)); a[4, 4] = 9.0
    >>> _disc_means(a, np.array([4, 0]), np.array([4, 0]), np.array([1.0, 1.0])).round(2).tolist()
    [1.8, 0.0]
    """
    out = np.zeros(len(i))
    for n, (ii, jj, rr) in enumerate(zip(i.astype(int), j.astype(int), np.maximum(rad, 1.0))):
        w = int(np.ceil(rr))
        i0, i1, j0, j1 = max(0, ii - w), min(a.shape[0], ii + w + 1), max(0, jj - w), min(a.shape[1], jj + w + 1)
        yy, xx = np.mgrid[i0:i1, j0:j1]
        m = (yy - ii) ** 2 + (xx - jj) ** 2 <= rr * rr + 1e-9
        out[n] = float(a[i0:i1, j0:j1][m].mean())
    return out


def _robust_noise(plane):
    """RMS of a LoG plane from its median absolute deviation (the subtracted dots leave few outliers)."""
    step = max(1, int(np.sqrt(plane.size / 4e4)))  # 40 000 samples: the MAD to ~0.5 %
    v = plane[::step, ::step]
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def residual_seeds(img, fit, seeds, det, noise, *, overlap: float = HIDDEN_OVERLAP):
    """New seeds (dict like ``seeds``, possibly empty) of hidden dots beside the fitted particles.

    ``img``: the image (linear units); ``fit``: the :class:`latticefit.particles._fit._Fit` of ``seeds``;
    ``det``: the detection data of :func:`latticefit.particles._detect._detect` (``f``, ``sigmas``, ``k``
    and the linear ``background`` on the detection grid); ``noise``: the image's
    :class:`latticefit.particles._noise.NoiseModel`. The residual is divided by its noise (``offset + gain *
    (background + model)`` per pixel, over the ``f x f`` block): the counting noise on a bright dot is
    larger than on the background, and its maxima would pass a threshold set by the background's.
    """
    from ._detect import LOG_SIGMA_PER_RADIUS
    from ._scalespace import log_planes

    empty = {key: v[:0] for key, v in seeds.items()}
    good = fit.ok & np.isfinite(fit.r)
    if good.sum() < MIN_FITS:
        return empty
    f, sigmas = det["f"], np.asarray(det["sigmas"], float)
    s_med = LOG_SIGMA_PER_RADIUS * float(np.median(fit.r[good])) / f
    use = np.nonzero((sigmas >= s_med / SCALE_SPAN) & (sigmas <= s_med * SCALE_SPAN))[0]
    if not use.size:
        use = np.array([int(np.argmin(np.abs(np.log(sigmas / s_med))))])
    # on the detection grid binned by d (3 samples per sigma, as the pyramid of the detection)
    d = int(octave_factors(sigmas[use[:1]])[0])
    resid, lin = _whitened_residual(img, fit, det, noise, d)
    planes = np.stack(list(log_planes(resid, sigmas[use] / d, mode="symmetric" if d > 1 else "reflect")))
    noise = np.array([_robust_noise(p) for p in planes])
    f = f * d
    rows = C.spatial_maxima(planes, det["k"] * noise, 0)
    if not len(rows):
        return empty
    k, i, j, v = rows.T
    ki = k.astype(int)
    cy, cx = (i + 0.5) * f - 0.5, (j + 0.5) * f - 0.5
    cr = sigmas[use][ki] * f / LOG_SIGMA_PER_RADIUS
    cs = v / noise[ki]
    # the fitted particles cover and neighbour a candidate; a seed whose fit failed does not (its dot shows
    # in the residual: the candidate replaces it, see :func:`failed_covered`). No strength rule: the
    # neighbour's top, where noise bumps would sit, is subtracted.
    pick = C.free_candidates(
        fit.y[good],
        fit.x[good],
        fit.r[good],
        seeds["strength"][good],
        cy,
        cx,
        cr,
        cs,
        prune=K.prune_blobs,
        overlap=overlap,
        min_strength=0.0,
    )
    # a fraction of the population's height at least (the residual of an imperfect fit is lower; each
    # candidate costs a refit of its touching component): the mean over the inner half radius of a
    # projected sphere is 0.9 of its peak height; the refit then asks HIDDEN_MIN_HEIGHT of the fit
    inner = _disc_means(lin, i[pick], j[pick], 0.5 * cr[pick] / f)
    pick = pick[inner >= PRESCREEN_HEIGHT * 0.9 * float(np.median(fit.h[good]))]
    return dict(
        x=cx[pick],
        y=cy[pick],
        r=cr[pick],
        strength=cs[pick],
        ci=i[pick].astype(int),
        cj=j[pick].astype(int),
        ck=use[ki[pick]].astype(int),
    )


def failed_covered(fit, seeds, cand, *, overlap: float = 0.4):
    """Seeds whose fit failed and whose detection a candidate covers (the pruning rule): replaced by it.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> fit = SimpleNamespace(ok=np.array([True, False, False]))
    >>> seeds = dict(x=np.array([0.0, 10.0, 30.0]), y=np.zeros(3), r=np.full(3, 2.5))
    >>> cand = dict(x=np.array([10.5]), y=np.array([0.5]), r=np.array([2.5]))
    >>> failed_covered(fit, seeds, cand).tolist()
    [False, True, False]
    """
    failed = ~np.asarray(fit.ok, bool)
    out = np.zeros(len(seeds["x"]), bool)
    out[failed] = C.covered(
        cand["y"], cand["x"], cand["r"], seeds["y"][failed], seeds["x"][failed], seeds["r"][failed], overlap
    )
    return out


def _near(x, y, r, cx, cy, cr, local):
    """Particles within reach of a local particle's or candidate's patch (a few diameters)."""
    from scipy.spatial import cKDTree

    px = np.concatenate([x[local], cx])
    py = np.concatenate([y[local], cy])
    if not px.size:
        return np.zeros(len(x), bool)
    reach = 3.0 * float(np.max(np.concatenate([r[local], cr]))) + 2.0 * float(np.max(r)) + 4.0
    d, _ = cKDTree(np.column_stack([px, py])).query(np.column_stack([x, y]), distance_upper_bound=reach)
    return np.isfinite(d)


def local_refit(img, fit, seeds, cand, refit, *, link: float = 1.15):
    """Fit again only the touching components that hold a candidate; every other particle keeps its fit.

    Components: the touching graph of the fitted particles and the candidates (the grouping rule of the
    fit, ``link``, uncapped). The light of the particles outside them is subtracted from the image their
    fit sees (the fitted spheres), as the full fit masks it. ``refit(image, seeds)`` is the fit of a seed
    dict (:func:`latticefit.particles._steps.fit_and_merge` with the probe sigma fixed); it returns
    ``(fit, seeds)``. Returns ``(fit, seeds)`` of all particles: the untouched ones first.
    """
    from ._grouping import union_groups

    n = len(seeds["x"])
    good = fit.ok & np.isfinite(fit.r)
    x = np.concatenate([np.where(good, fit.x, seeds["x"]), cand["x"]])
    y = np.concatenate([np.where(good, fit.y, seeds["y"]), cand["y"]])
    r = np.concatenate([np.where(good, fit.r, seeds["r"]), cand["r"]])
    comp = union_groups(x, y, r, link, max_size=None)
    local = np.isin(comp[:n], comp[n:])
    out = good & ~local & _near(x[:n], y[:n], r[:n], x[n:], y[n:], r[n:], local)  # light reaching their patches
    others = _model_on_grid(fit.select(out), 1, img.shape)
    sub = {key: np.concatenate([v[local], cand[key]]) for key, v in seeds.items()}
    fit_l, seeds_l = refit(np.asarray(img, np.float64) - others, sub)
    keep = {key: v[~local] for key, v in seeds.items()}
    return fit.select(~local).concat(fit_l), {key: np.concatenate([keep[key], seeds_l[key]]) for key in seeds}


#: a hidden dot is kept when at most this fraction of its fitted disc lies inside other fitted discs: more
#: is the neck where two fitted spheres touch (their light there is more than two spheres': facets, a
#: flattened contact), not a dot (0.69 for a 3.6 nm "dot" between two touching 9-10 nm particles of the
#: real EMI view; the 7.9 nm dot overlapping a 14 nm one on the JEOL file: 0.28)
HIDDEN_MAX_COVERED = 0.5


def covered_fraction(x, y, r, i):
    """Fraction of disc ``i`` (centre ``x[i], y[i]``, radius ``r[i]``) inside the other discs (a 21 x 21 sample).

    Examples
    --------
    >>> x, y, r = np.array([0.0, 10.0]), np.zeros(2), np.array([5.0, 5.0])
    >>> round(covered_fraction(x, y, r, 0), 2), covered_fraction(x, y, r / 2, 0)
    (0.0, 0.0)
    >>> round(covered_fraction(np.array([0.0, 3.0]), y, r, 0), 2)  # the lens: 0.624 of the disc
    0.63
    """
    u = np.linspace(-1.0, 1.0, 21)
    uy, ux = np.meshgrid(u, u, indexing="ij")
    inside = np.hypot(ux, uy) <= 1.0
    px, py = x[i] + r[i] * ux[inside], y[i] + r[i] * uy[inside]
    with np.errstate(invalid="ignore"):  # only discs that reach disc i can cover it (NaN: no disc)
        other = (np.arange(len(x)) != i) & (np.hypot(x - x[i], y - y[i]) <= r + r[i])
    hit = np.hypot(px[:, None] - x[other], py[:, None] - y[other]) <= r[other]
    return float(hit.any(axis=1).mean())


def covered_fractions(x, y, r, cand, cover):
    """:func:`covered_fraction` of each disc ``cand`` (boolean mask) inside the discs ``cover`` (mask; a
    candidate's own disc is never its cover); 0 for the others.

    Examples
    --------
    >>> x, y, r = np.array([0.0, 3.0, 20.0]), np.zeros(3), np.array([5.0, 5.0, 5.0])
    >>> covered_fractions(x, y, r, np.array([False, True, True]), np.array([True, False, False])).round(2).tolist()
    [0.0, 0.62, 0.0]
    """
    out = np.zeros(len(x))
    for i in np.nonzero(cand)[0]:
        use = np.asarray(cover, bool).copy()
        use[i] = True
        out[i] = covered_fraction(x[use], y[use], r[use], int(np.count_nonzero(use[:i])))
    return out


def partition_by_model(labels, fit, hidden):
    """Labels of each group holding a hidden dot re-drawn by its fitted spheres: a pixel of the group's
    segments goes to the sphere brightest there.

    A hidden dot has no intensity maximum of its own, so the watershed gives its pixels to the neighbour whose
    flank it sits on. Within the group's segments (full-resolution labels ``index + 1``), the model decides.
    """
    use = hidden & fit.ok & np.isfinite(fit.r)
    if not use.any():
        return labels
    from scipy import ndimage as ndi

    ok = fit.ok & np.isfinite(fit.r) & np.isfinite(fit.h) & (fit.h > 0)
    s = np.sqrt(fit.sigma_px**2 + 1.0 / 12.0)
    boxes = ndi.find_objects(labels, max_label=len(fit.x))  # one pass; a group's pixels lie in its boxes
    for g in np.unique(fit.group[use]):
        members = np.nonzero(ok & (fit.group == g))[0]
        have = [boxes[k] for k in members if boxes[k] is not None]  # a hidden dot may have no segment at all
        if len(members) < 2 or not have:
            continue
        y0, y1 = min(b[0].start for b in have), max(b[0].stop for b in have)
        x0, x1 = min(b[1].start for b in have), max(b[1].stop for b in have)
        win = labels[y0:y1, x0:x1]  # a view: written in place
        yy, xx = np.nonzero(np.isin(win, members + 1))
        rho = np.hypot(xx[:, None] + x0 - fit.x[members], yy[:, None] + y0 - fit.y[members]) / fit.r[members]
        val = fit.h[members] * sphere_profile_table(rho, np.broadcast_to(s / fit.r[members], rho.shape))
        lit = val.max(axis=1) > 0  # beyond every sphere's reach a pixel keeps its watershed label
        win[yy[lit], xx[lit]] = members[np.argmax(val[lit], axis=1)] + 1
    return labels
