"""The result of :func:`latticefit.lattice.measure_lattice`: the spots table, angles, basis and its JSON contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ._multi import _pm
from ._plausibility import empty_rejected

__all__ = ["LatticeResult", "SPOT_COLUMNS", "ANGLE_COLUMNS", "LATTICE_SCHEMA_VERSION"]

SPOT_COLUMNS = [
    "gx_inv_nm",
    "gy_inv_nm",
    "g_abs_inv_nm",
    "d_angstrom",
    "d_err_angstrom",
    "azimuth_deg",
    "azimuth_err_deg",
    "snr",
    "order",
    "n1",
    "n2",
    "cov_xx",
    "cov_xy",
    "cov_yy",
    "amplitude",
    "phase_rad",
    "gx_cycles_per_px",
    "gy_cycles_per_px",
    "noise_sigma",
    "converged",
    "lattice",
    "lattice_order",
]
#: version of the ``LatticeResult.to_dict`` JSON (2: ``lattices``, ``rejected_spots``, a spot's ``lattice``;
#: 3: basis indices ``n1``, ``n2`` instead of ``hk``)
LATTICE_SCHEMA_VERSION = 3
ANGLE_COLUMNS = ["spot_i", "spot_j", "angle_deg", "angle_err_deg"]
#: the statistical (Fisher) and systematic (image's own distortion) parts of the errors; d_err_angstrom and
#: azimuth_err_deg are their quadrature sum (see lattice._systematic)
_ERR_PART_COLUMNS = ("d_err_stat_angstrom", "d_err_sys_angstrom", "azimuth_err_stat_deg", "azimuth_err_sys_deg")


@dataclass(eq=False)
class LatticeResult:
    """The lattice measured in one image or region.

    Attributes
    ----------
    spots : pandas.DataFrame
        One row per Friedel pair, strongest (highest ``snr``) first. Columns:
        ``gx_inv_nm``, ``gy_inv_nm`` (the g vector, 1/nm), ``g_abs_inv_nm`` (|g|),
        ``d_angstrom``, ``d_err_angstrom`` (1 sigma), ``azimuth_deg`` (of g, from
        +x towards +y, in (-90, 90]), ``azimuth_err_deg``, ``snr`` (amplitude
        signal-to-noise ratio, ``a sqrt(n_pixels) / (2 sigma)``), ``order``
        (1 for a plane family, n for its n-th harmonic), ``h``, ``k`` (indices
        in the fitted basis), ``cov_xx``, ``cov_xy``, ``cov_yy`` (covariance of
        (gx, gy) in (1/nm)^2), ``amplitude`` (of the fringe ``a cos(2 pi g.r + phase)``
        in image units), ``phase_rad`` (phase at pixel (0, 0) of the image,
        with r in pixels and g in cycles/px: ``gx_cycles_per_px``, ``gy_cycles_per_px``),
        ``noise_sigma`` (local noise per pixel), ``converged``.
    angles : pandas.DataFrame
        Acute angle between every two first-order plane families (rows
        ``spot_i``, ``spot_j`` of ``spots``): ``angle_deg``, ``angle_err_deg``.
    basis : dict or None
        ``g1_inv_nm``, ``g2_inv_nm`` (fitted basis vectors), ``g1_index``,
        ``g2_index`` (their rows in ``spots``), ``d_angstrom`` [d1, d2],
        ``d_err_angstrom``, ``angle_deg`` (acute angle between the basis
        vectors: 60 for a hexagonal net), ``angle_err_deg``, ``cov_inv_nm2``
        (4x4), ``chi2``, ``dof``, ``n_spots``. None with fewer than two
        independent families.
    pixel_size_nm : (float, float)
    roi : dict or None
    source : str or None
    region_shape : (int, int)
        Shape of the analysed box.
    warnings : list of str
    """

    spots: pd.DataFrame
    angles: pd.DataFrame
    basis: dict | None
    pixel_size_nm: tuple[float, float]
    roi: dict | None
    source: str | None
    region_shape: tuple[int, int]
    warnings: list = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: the image's systematic lattice variation added to the errors (``lattice._systematic.SystematicModel``)
    systematic: Any = None
    #: every lattice: [0] the main one (as ``basis``), then the further nets of the spots it leaves
    #: (``lattice._multi.Lattice``; a spot's ``lattice`` column names its net, -1 none)
    lattices: list = field(default_factory=list)
    #: spots refused as implausible (``lattice._plausibility``): d, azimuth, snr and ``reason``
    rejected_spots: pd.DataFrame = field(default_factory=lambda: empty_rejected())

    def __len__(self) -> int:
        return len(self.spots)

    def to_dict(self) -> dict:
        """The JSON contract of ``latticefit lattice --json`` (more keys are allowed)."""
        spots = []
        for i, r in self.spots.iterrows():
            spots.append(
                {
                    "g_inv_nm": [float(r.gx_inv_nm), float(r.gy_inv_nm)],
                    "d_angstrom": float(r.d_angstrom),
                    "d_err_angstrom": float(r.d_err_angstrom),
                    "azimuth_deg": float(r.azimuth_deg),
                    "azimuth_err_deg": float(r.azimuth_err_deg),
                    "snr": float(r.snr),
                    "order": int(r.order),
                    "n1": None if pd.isna(r.n1) else int(r.n1),
                    "n2": None if pd.isna(r.n2) else int(r.n2),
                    "cov_inv_nm2": [[float(r.cov_xx), float(r.cov_xy)], [float(r.cov_xy), float(r.cov_yy)]],
                    "amplitude": float(r.amplitude),
                    "phase_rad": float(r.phase_rad),
                    **{k: float(getattr(r, k)) for k in _ERR_PART_COLUMNS if k in self.spots.columns},
                }
            )
            if "d_err_calibration_angstrom" in self.spots.columns:  # a calibrated image: the two parts
                spots[-1]["d_err_measurement_angstrom"] = float(r.d_err_measurement_angstrom)
                spots[-1]["d_err_calibration_angstrom"] = float(r.d_err_calibration_angstrom)
        angles = [
            {
                "spots": [int(r.spot_i), int(r.spot_j)],
                "angle_deg": float(r.angle_deg),
                "angle_err_deg": float(r.angle_err_deg),
                **{
                    k: float(getattr(r, k))
                    for k in ("angle_err_stat_deg", "angle_err_sys_deg")
                    if k in self.angles.columns
                },
            }
            for r in self.angles.itertuples()
        ]
        for rec, r in zip(spots, self.spots.itertuples()):
            if "lattice" in self.spots.columns:
                rec["lattice"] = int(r.lattice)
        rejected = [
            {
                "g_inv_nm": [float(r.gx_inv_nm), float(r.gy_inv_nm)],
                "d_angstrom": float(r.d_angstrom),
                "azimuth_deg": float(r.azimuth_deg),
                "snr": float(r.snr),
                "reason": str(r.reason),
            }
            for r in self.rejected_spots.itertuples()
        ]
        return {
            "schema_version": LATTICE_SCHEMA_VERSION,
            "file": self.source,
            "pixel_size_nm": list(self.pixel_size_nm),
            "roi": self.roi,
            "region_shape": list(self.region_shape),
            "spots": spots,
            "angles": angles,
            "basis": self.basis,
            "lattices": [lat.to_dict() for lat in self.lattices],
            "rejected_spots": rejected,
            "warnings": list(self.warnings),
            "method": dict(self.info),
        }

    def table(self) -> str:
        """A readable table of the spots (d in Å) and the basis."""
        lines = []
        if len(self.spots) == 0:
            return "no lattice spots found"
        lines.append(f"{'#':>3} {'d (Å)':>16} {'azimuth (°)':>16} {'snr':>8} {'order':>5} {'n1,n2':>8}")
        for i, r in enumerate(self.spots.itertuples()):
            lines.append(
                f"{i:>3} {_pm(r.d_angstrom, r.d_err_angstrom):>16} "
                f"{_pm(r.azimuth_deg, r.azimuth_err_deg):>16} "
                f"{r.snr:>8.1f} {int(r.order):>5} {_basis_index_text(r):>8}"
            )
        if self.basis:
            b = self.basis
            lines.append(
                "basis: d1 = {} Å, d2 = {} Å, angle = {}°".format(
                    _pm(b["d_angstrom"][0], b["d_err_angstrom"][0]),
                    _pm(b["d_angstrom"][1], b["d_err_angstrom"][1]),
                    _pm(b["angle_deg"], b["angle_err_deg"]),
                )
            )
        for lat in self.lattices[1:]:
            lines.append(lat.describe() + " (n1,n2 column 'lattice:(n1,n2)')")
        if len(self.rejected_spots):
            lines.append(
                f"{len(self.rejected_spots)} spot(s) refused as not lattice reflections (rejected_spots): "
                + "; ".join(sorted({str(x).split(":")[0].split(" (")[0] for x in self.rejected_spots.reason}))
            )
        lines.append(_budget_line(self.systematic))
        return "\n".join(lines)

    def __repr__(self) -> str:
        basis = "yes" if self.basis else "none"
        return f"LatticeResult({len(self.spots)} spots, basis={basis}, source={self.source!r})"


def _basis_index_text(r) -> str:
    """(n1,n2) of a spot in its lattice: plain for the main one, ``m:(n1,n2)`` for further lattice m, ``-`` for none."""
    if pd.isna(r.n1):
        return "-"
    lat = int(getattr(r, "lattice", 0)) if not pd.isna(getattr(r, "lattice", 0)) else 0
    if lat < 0:
        return "-"
    return f"({int(r.n1)},{int(r.n2)})" if lat == 0 else f"{lat}:({int(r.n1)},{int(r.n2)})"


def _budget_line(model) -> str:
    """What the ± of the table are (the error budget)."""
    if model is None or model.method == "none":
        return "± : 1 sigma standard uncertainty, statistical (Fisher) only"
    if model.method != "tiles":
        return "± : 1 sigma standard uncertainty, statistical only (too few tiles to estimate the image's distortion)"
    if not model.significant:
        return (
            f"± : 1 sigma standard uncertainty; the image's own distortion is not significant over "
            f"{model.n_tiles} tiles (p = {model.p_value:.2g}): statistical only"
        )
    return (
        f"± : 1 sigma standard uncertainty, statistical and the image's own distortion (scatter of "
        f"{model.n_tiles} tiles) in quadrature"
    )


def _empty_spots() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in SPOT_COLUMNS})


def _empty_angles() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in ANGLE_COLUMNS})
