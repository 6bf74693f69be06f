"""Region statistics on a strain map: a dot against the matrix around it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ._systematic import AMPLITUDE_CHANGE, amplitude_changed, amplitude_ratios, null_scatter

__all__ = ["RegionContrast", "region_contrast", "disc_masks", "dots_mask", "AMPLITUDE_CHANGE", "RING_RADII"]

TEST = (
    "two-sided z-test of the difference of region means; SE = white noise (Fisher) and the systematic "
    "scatter of the same contrast elsewhere in the matrix, in quadrature; significant when p < 0.0027 and "
    "the fringe amplitude is unchanged"
)


@dataclass
class RegionContrast:
    """Mean of one map inside vs outside, with standard errors (1 SE) and a two-sided z-test.

    ``difference = inside - outside``. ``se_noise_difference = hypot(se_inside, se_outside)`` is the white
    noise part (the regions are disjoint; a common error of the reference g cancels in the difference);
    ``se_systematic`` is the part the noise does not cover, from the root-mean-square contrast of the same
    pattern at ``n_null_placements`` other places in the matrix (``systematic_method = "placements"``) or,
    when too few fit, the map's pixel floor (``"pixel floor"``, see :mod:`latticefit.gpa._systematic`);
    ``se_difference`` is both in quadrature and ``z`` uses it. ``amplitude_ratio_g1/g2`` are the median
    fringe amplitudes inside over outside; ``amplitude_changed`` when either departs from 1 by more than
    ``AMPLITUDE_CHANGE``: then the phase inside carries the fringe's changed structure factor, not only a
    displacement, and the contrast is not a strain measurement. Values are dimensionless (0.01 = 1 %),
    rotation in rad.
    """

    map_name: str
    mean_inside: float
    se_inside: float
    mean_outside: float
    se_outside: float
    difference: float
    se_difference: float
    z: float
    p_two_sided: float
    n_inside_px: int
    n_outside_px: int
    se_noise_difference: float = float("nan")
    se_systematic: float = 0.0
    systematic_method: str = "none"
    n_null_placements: int = 0
    amplitude_ratio_g1: float = float("nan")
    amplitude_ratio_g2: float = float("nan")
    amplitude_changed: bool = False
    test: str = TEST

    @property
    def significant(self) -> bool:
        """``p < 0.0027`` (|z| > 3) and the fringe amplitude unchanged (else not a strain measurement)."""
        return self.p_two_sided < 0.0027 and not self.amplitude_changed

    @property
    def verdict(self) -> str:
        if self.amplitude_changed:
            return "not a strain measurement (the fringe changed, see the amplitude ratios)"
        return "significant" if self.significant else "not significant"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["significant"] = self.significant
        d["verdict"] = self.verdict
        return d

    def line(self) -> str:
        k, u = (1e3, "mrad") if self.map_name == "rotation_rad" else (100.0, "%")
        amp = (
            f"; fringe amplitude inside x{self.amplitude_ratio_g1:.2f} (g1), x{self.amplitude_ratio_g2:.2f} (g2) "
            "of outside: the phase there follows the changed fringe, not only displacement"
            if self.amplitude_changed
            else ""
        )
        return (
            f"{self.map_name}: inside {self.mean_inside * k:+.3f} ± {self.se_inside * k:.3f} {u}, outside "
            f"{self.mean_outside * k:+.3f} ± {self.se_outside * k:.3f} {u} (± 1 SE, noise); difference "
            f"{self.difference * k:+.3f} ± {self.se_difference * k:.3f} {u} (± 1 SE: noise "
            f"{self.se_noise_difference * k:.3f}, systematic {self.se_systematic * k:.3f} from "
            f"{self._systematic_source()}), z = {self.z:+.1f}, p = {self.p_two_sided:.2g}{amp}: {self.verdict}"
        )

    def _systematic_source(self) -> str:
        if self.systematic_method == "placements":
            return f"{self.n_null_placements} placements in the matrix"
        return self.systematic_method


#: the matrix ring of a dot of radius R: from 1.6 R to 3 R
RING_RADII = (1.6, 3.0)


def disc_masks(shape, x_px: float, y_px: float, r_px: float, *, inner: float = 0.6, outer: tuple = RING_RADII):
    """Boolean masks of the dot core (``r < inner R``) and a matrix ring (``outer[0] R < r < outer[1] R``)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rr = np.hypot(xx - x_px, yy - y_px)
    return rr < inner * r_px, (rr > outer[0] * r_px) & (rr < outer[1] * r_px)


def dots_mask(shape, dots) -> np.ndarray:
    """Every dot ``(x_px, y_px, r_px)`` out to its matrix ring's inner edge (``RING_RADII[0]`` R).

    The pixels that no null placement of a dot contrast may touch when an image holds several dots.
    """
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    out = np.zeros(shape, bool)
    for x, y, r in dots:
        out |= (xx - x) ** 2 + (yy - y) ** 2 <= (RING_RADII[0] * r) ** 2
    return out


def region_contrast(
    result, inside, outside, name: str = "dilatation", *, exclude=None, systematic: bool = True
) -> RegionContrast:
    """Compare the mean of map ``name`` over two regions of a :class:`StrainMap` (valid pixels only).

    Parameters
    ----------
    result : StrainMap
    inside, outside : bool arrays
        The dot core and the matrix around it (see :func:`disc_masks`).
    name : str
        The map.
    exclude : bool array, optional
        Pixels the null placements may not touch (every dot of the image); default: what the ring encloses.
    systematic : bool
        Add the systematic scatter of the same contrast elsewhere in the matrix to the SE (default True;
        False gives the white-noise test alone).

    Examples
    --------
    See ``tests/test_gpa.py::test_dot_contrast_significant_for_1_percent_not_for_noise``.
    """
    mi, si = result.region_mean(name, inside)
    mo, so = result.region_mean(name, outside)
    diff, se_noise = mi - mo, math.hypot(si, so)
    null = null_scatter(result, name, inside, outside, exclude=exclude) if systematic else None
    se_sys = null.se_systematic if null is not None and np.isfinite(null.se_systematic) else 0.0
    se = math.hypot(se_noise, se_sys)
    z = diff / se if se > 0 else float("nan")
    p = math.erfc(abs(z) / math.sqrt(2.0)) if np.isfinite(z) else float("nan")
    n_in = int((np.asarray(inside, bool) & result.valid).sum())
    n_out = int((np.asarray(outside, bool) & result.valid).sum())
    ratios = amplitude_ratios(result, inside, outside)
    return RegionContrast(
        name,
        mi,
        si,
        mo,
        so,
        diff,
        se,
        z,
        p,
        n_in,
        n_out,
        se_noise_difference=se_noise,
        se_systematic=se_sys,
        systematic_method="none" if null is None else null.method,
        n_null_placements=0 if null is None else null.n_placements,
        amplitude_ratio_g1=ratios[0],
        amplitude_ratio_g2=ratios[1],
        amplitude_changed=amplitude_changed(ratios),
    )
