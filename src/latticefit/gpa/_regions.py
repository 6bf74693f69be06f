"""Region statistics on a strain map: a dot against the matrix around it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["RegionContrast", "region_contrast", "disc_masks"]


@dataclass
class RegionContrast:
    """Mean of one map inside vs outside, with standard errors (1 SE) and a two-sided z-test.

    ``difference = inside - outside``; ``se_difference = hypot(se_inside, se_outside)``
    (the regions are disjoint; a common error of the reference g cancels in the
    difference). Values are dimensionless (0.01 = 1 %), rotation in rad.
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
    test: str = "two-sided z-test of the difference of region means (white-noise SE, Fisher)"

    @property
    def significant(self) -> bool:
        """``p < 0.0027`` (|z| > 3)."""
        return self.p_two_sided < 0.0027

    def to_dict(self) -> dict:
        d = asdict(self)
        d["significant"] = self.significant
        return d

    def line(self) -> str:
        k, u = (1e3, "mrad") if self.map_name == "rotation_rad" else (100.0, "%")
        return (
            f"{self.map_name}: inside {self.mean_inside * k:+.3f} ± {self.se_inside * k:.3f} {u}, outside "
            f"{self.mean_outside * k:+.3f} ± {self.se_outside * k:.3f} {u} (± 1 SE); difference "
            f"{self.difference * k:+.3f} ± {self.se_difference * k:.3f} {u}, z = {self.z:+.1f}, "
            f"p = {self.p_two_sided:.2g}: {'significant' if self.significant else 'not significant'}"
        )


def disc_masks(shape, x_px: float, y_px: float, r_px: float, *, inner: float = 0.6, outer: tuple = (1.6, 3.0)):
    """Boolean masks of the dot core (``r < inner R``) and a matrix ring (``outer[0] R < r < outer[1] R``)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rr = np.hypot(xx - x_px, yy - y_px)
    return rr < inner * r_px, (rr > outer[0] * r_px) & (rr < outer[1] * r_px)


def region_contrast(result, inside, outside, name: str = "dilatation") -> RegionContrast:
    """Compare the mean of map ``name`` over two regions of a :class:`StrainMap` (valid pixels only).

    Examples
    --------
    See ``tests/test_gpa.py::test_dot_contrast_significant_for_1_percent_not_for_noise``.
    """
    mi, si = result.region_mean(name, inside)
    mo, so = result.region_mean(name, outside)
    diff, se = mi - mo, math.hypot(si, so)
    z = diff / se if se > 0 else float("nan")
    p = math.erfc(abs(z) / math.sqrt(2.0)) if np.isfinite(z) else float("nan")
    n_in = int((np.asarray(inside, bool) & result.valid).sum())
    n_out = int((np.asarray(outside, bool) & result.valid).sum())
    return RegionContrast(name, mi, si, mo, so, diff, se, z, p, n_in, n_out)
