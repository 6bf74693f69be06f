"""The joint fit of all detections: groups of touching particles, the probe, a fit per group, its chi2.

:func:`_fit_particles` groups the detections (:func:`latticefit.particles._grouping.union_groups`), fits the
probe sigma on the brightest isolated ones, fits every group jointly, and refits a group that did not
converge without its members that ran away (:func:`_salvage_groups`). :func:`_disc_chi2` measures each
fit against the noise model.
"""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np

from . import _kernels as K
from ._fit import (
    FIT_RADIUS_PX,
    _Fit,
    _fit_all_groups,
    _fit_probe_sigma,
    _isolated_groups,
    _model_values,
    _prepare_groups,
    _Solution,
    _unpack,
)
from ._grouping import union_groups
from ._noise import NoiseModel


def _fit_particles(img, x, y, r, strength, noise: NoiseModel, probe_sigma_px, link=1.15, invalid=None):
    """Joint model fits of all particles; returns a :class:`_Fit` (full-resolution px units).

    Touching particles are grouped (:func:`latticefit.particles._grouping.union_groups`) and each group's
    patch binned so its smallest radius spans ``FIT_RADIUS_PX`` fit pixels; the probe sigma, unless given,
    is fitted on the brightest isolated particles and then fixed for the joint fit of all groups. A group that
    did not converge because some of its members ran away is fitted again without them
    (:func:`_salvage_groups`).
    """
    group = union_groups(x, y, r, link)
    members = [np.nonzero(group == g)[0] for g in range(int(group.max()) + 1)]
    sigma_guess = probe_sigma_px if probe_sigma_px is not None else max(0.5, 0.05 * float(np.median(r)))
    if probe_sigma_px is None:  # fitted on the brightest isolated particles, then fixed
        prep, bsz = _prepared(img, x, y, r, group, members, sigma_guess, invalid)
        iso = _isolated_groups(members, x, y, r, strength, img.shape)
        probe_sigma_px = _fit_probe_sigma(prep, iso, bsz, sigma_guess, r)
        fit, sol, loose = _joint_fit(img, x, y, r, group, members, noise, probe_sigma_px, invalid, prep)
    else:
        fit, sol, loose = _joint_fit(img, x, y, r, group, members, noise, probe_sigma_px, invalid)
    return _salvage_groups(img, x, y, r, fit, members, sol, loose, noise, invalid)


def _prepared(img, x, y, r, group, members, fit_sigma_px, invalid):
    """The groups' patches (:func:`_prepare_groups`, binned by ``FIT_RADIUS_PX``) and their block sizes."""
    b_of_group = np.array([max(1, int(r[m].min() // FIT_RADIUS_PX)) for m in members])
    prep = _prepare_groups(img, x, y, r, group, members, fit_sigma_px, b_of_group, 0.0, invalid)
    return prep, np.array([o[2] for o in prep["origin"]], float)


def _joint_fit(img, x, y, r, group, members, noise, probe_sigma_px, invalid, prep=None):
    """The fit of the groups ``members`` with the probe sigma fixed: ``(fit, solution, loose)``.

    ``fit`` holds every detection (NaN and not ``ok`` outside ``members``); ``loose`` tells which members
    pass their own checks whether or not their group converged (:func:`latticefit.particles._fit._unpack`).
    """
    if prep is None:
        prep, _ = _prepared(img, x, y, r, group, members, probe_sigma_px, invalid)
    bsz = np.array([o[2] for o in prep["origin"]], float)
    s2 = (probe_sigma_px / bsz) ** 2 + 1.0 / 12.0
    sol = _fit_all_groups(prep, noise, s2, bsz)
    fit, loose = _unpack(prep, members, sol, x, y, r, noise, bsz, group, probe_sigma_px)
    fit.chi2_red, fit.chi2_disc, fit.chi2_bg, fit.misfit = _disc_chi2(prep, members, sol, s2, noise, bsz, len(x))
    return fit, sol, loose


def _fit_masking_the_rest(img, x, y, r, members, noise, probe_sigma_px, invalid):
    """:func:`_joint_fit` of the groups ``members`` (``fit.group`` their index) with every other particle in
    no fitted group: masked from their patches, as any other group's particle is.
    """
    label = -1 - np.arange(len(x))
    for i, m in enumerate(members):
        label[m] = i
    return _joint_fit(img, x, y, r, label, members, noise, probe_sigma_px, invalid)


def _salvage_groups(img, x, y, r, fit: _Fit, members, sol: _Solution, loose, noise, invalid) -> _Fit:
    """Refit the groups that did not converge because some members ran away, without those members.

    In a joint fit one member that runs off (a faint detection on the halo of a larger blob whose fit
    diverged to 1e7 px) stops its whole group from converging, and every member's fit fails with it: on
    the real Velox view two bright, well-fitted 55 nm dots beside a 190 nm faint sphere were lost so. A
    group of several members, some of whose fits pass their own checks (centre, size, height, error;
    :func:`latticefit.particles._fit._unpack`) and some not, is fitted again with the others each in a group
    of its own (masked from the rest as any other group's particle is). One pass; a group that still does
    not converge stays failed.
    """
    split = [g for g, m in enumerate(members) if not sol.conv[g] and len(m) > 1 and 0 < loose[m].sum() < len(m)]
    if not split:
        return fit
    new_members = []
    for g in split:
        m = members[g]
        new_members.append(m[loose[m]])
        new_members.extend(m[~loose[m]][:, None])
    refit, _sol, _loose = _fit_masking_the_rest(img, x, y, r, new_members, noise, fit.sigma_px, invalid)
    rows = np.concatenate(new_members)
    out = {f.name: getattr(fit, f.name).copy() for f in fields(fit) if f.name != "sigma_px"}
    for name, arr in out.items():
        arr[rows] = getattr(refit, name)[rows]
    out["group"][rows] = int(fit.group.max()) + 1 + refit.group[rows]
    return replace(fit, **out)


#: a particle's own chi2 is taken over the fit pixels within its fitted radius plus this many probe sigmas
DISC_CHI2_SIGMAS = 2.0


def _disc_chi2(prep, members, sol: _Solution, s2, noise: NoiseModel, bsz, n):
    """Each group's reduced chi2, and each particle's over the pixels of its own disc (radius +
    ``DISC_CHI2_SIGMAS`` sigma) and over its group's pixels outside every disc.

    The residuals are weighted by the noise model's variance at the fitted model, pixel by pixel
    (:func:`_noise_weights`): a bright particle's own shot noise is not a misfit (with a dark level, the
    variance of the real Velox view's dots is ~190 times its background's). The group's chi2 also counts what
    the model does not describe around the particles: a film edge or a thickness step that the quadratic
    background cannot follow, the flank of a dot outside the frame. A sphere that does not describe its
    particle shows the misfit on its own disc too, so the chi2 rule asks both
    (:func:`latticefit.particles._checks.check_fits`). Where the disc holds too few pixels the group's value
    stands. Returns ``(chi2_red, chi2_disc, chi2_background, misfit)`` per particle (:func:`_background_residual`;
    ``misfit``: the RMS of the residual beyond the noise over the disc, over the fitted height), for ``n``
    detections (NaN outside ``members``).
    """
    po, pf = prep["pix_off"], prep["par_off"]
    model = sol.model if sol.model is not None else _model_values(prep, sol.params, s2)
    sq = (prep["data"] - model) ** 2
    w = _noise_weights(prep, sol, model, bsz, noise)
    res2 = sq * w
    chi2_red = _group_chi2(prep, members, res2, sol.wts, n)
    # every (particle, pixel of its group) pair at once
    g_of = np.concatenate([np.full(len(m), g) for g, m in enumerate(members)])
    k_of = np.concatenate(members)
    o = pf[g_of] + K.N_BACKGROUND + 4 * np.concatenate([np.arange(len(m)) for m in members])
    lens = po[g_of + 1] - po[g_of]
    pair = np.repeat(np.arange(len(k_of)), lens)
    pix = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(po[g_of], lens)
    reach = DISC_CHI2_SIGMAS * np.sqrt(np.asarray(s2, float)[g_of])
    dist = np.hypot(prep["xs"][pix] - sol.params[o][pair], prep["ys"][pix] - sol.params[o + 1][pair])
    sel = (sol.wts[pix] > 0) & (dist <= np.abs(sol.params[o + 2])[pair] + reach[pair])
    sums = np.bincount(pair[sel], weights=res2[pix][sel], minlength=len(k_of))
    cnt = np.bincount(pair[sel], minlength=len(k_of))
    out = np.array(chi2_red, float, copy=True)
    use = cnt > 16
    out[k_of[use]] = sums[use] / (cnt[use] - 4)
    # misfit beyond the noise: mean squared residual minus mean variance over the disc, over the height
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(w > 0, 1.0 / np.where(w > 0, w, 1.0), 0.0)
        excess = np.bincount(pair[sel], weights=(sq - var)[pix][sel], minlength=len(k_of)) / np.maximum(cnt, 1)
        height = np.abs(sol.params[o + 3])
        misfit = np.full(len(chi2_red), np.nan)
        misfit[k_of[use]] = (np.sqrt(np.maximum(excess, 0.0)) / height)[use]
    background = np.full(len(chi2_red), np.nan)
    background[k_of] = _background_residual(prep, pix[sel], res2, sol.wts, len(members))[g_of]
    return chi2_red, out, background, misfit


def _noise_weights(prep, sol: _Solution, model, bsz, noise: NoiseModel):
    """1 / (the noise model's variance at the fitted model) per fit pixel of ``b`` x ``b`` px; 0 where masked.

    With counting noise these are the fit's own weights. Otherwise the fit was unweighted and the variance
    ``offset + gain * model`` is floored at a tenth of the image's background variance (a model below a
    detector's dark level).
    """
    if noise.counts:
        return sol.wts
    bb = np.repeat(bsz, np.diff(prep["pix_off"]))
    var = np.maximum(noise.offset + noise.gain * model, 0.1 * noise.sigma**2) / (bb * bb)
    return np.where(sol.wts > 0, 1.0 / var, 0.0)


def _group_chi2(prep, members, res2, wts, n):
    """Per particle, its group's sum of weighted squared residuals over (fit pixels - parameters)."""
    po, pf = prep["pix_off"], prep["par_off"]
    g_pix = np.repeat(np.arange(len(members)), np.diff(po))
    sums = np.bincount(g_pix, weights=np.where(wts > 0, res2, 0.0), minlength=len(members))
    npix = np.bincount(g_pix, weights=(wts > 0).astype(float), minlength=len(members))
    out = np.full(n, np.nan)
    out[np.concatenate(members)] = np.repeat(sums / np.maximum(npix - np.diff(pf), 1.0), [len(m) for m in members])
    return out


def _background_residual(prep, disc_pixels, res2, wts, n_groups):
    """Each group's mean weighted squared residual over its fit pixels outside every disc (nan: <= 16 pixels).

    The background's own misfit: a step of the film under a dot misfits the disc and its surroundings alike.
    """
    in_disc = np.zeros(len(res2), bool)
    in_disc[disc_pixels] = True
    g_pix = np.repeat(np.arange(n_groups), np.diff(prep["pix_off"]))
    sel = (wts > 0) & ~in_disc
    sums = np.bincount(g_pix[sel], weights=res2[sel], minlength=n_groups)
    cnt = np.bincount(g_pix[sel], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 16, sums / cnt, np.nan)
