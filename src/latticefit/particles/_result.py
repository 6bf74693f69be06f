"""The result of :func:`latticefit.particles.find_particles`: one row per particle, the summary, the JSON contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._background import _resample

#: version of the ``ParticleResult.to_dict`` JSON (``latticefit particles --json``)
PARTICLES_SCHEMA_VERSION = 1


#: columns of :attr:`ParticleResult.table` (in order)
TABLE_COLUMNS = (
    "label",
    "x_px",
    "y_px",
    "diameter_nm",
    "diameter_err_nm",
    "x_err_px",
    "y_err_px",
    "ecd_nm",
    "feret_max_nm",
    "feret_min_nm",
    "major_axis_nm",
    "minor_axis_nm",
    "orientation_deg",
    "circularity",
    "solidity",
    "area_nm2",
    "integrated_intensity",
    "peak_height",
    "log_radius_nm",
    "hidden",
    "outline_fraction",
    "ecd_level_factor",
    "edge",
    "cluster_unsplit",
    "fit_ok",
    "fit_group",
    "chi2_red",
    "chi2_red_disc",
    "chi2_red_background",
    "misfit_fraction",
    "ml_weight",
    "aspect_ratio",
    "status",
    "reject_reason",
    "in_statistics",
    "error_scale",
)


#: keys of each particle in the JSON contract
JSON_PARTICLE_KEYS = (
    "x_px",
    "y_px",
    "diameter_nm",
    "diameter_err_nm",
    "ecd_nm",
    "feret_max_nm",
    "feret_min_nm",
    "edge",
)


@dataclass(eq=False)
class ParticleResult:
    """The particles found in one image.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per particle (columns :data:`TABLE_COLUMNS`); lengths in nm,
        positions in pixels of the input image (x right, y down, pixel centres
        at integers). ``diameter_nm`` is the model-fit diameter.
    summary : dict
        :func:`latticefit.sizestats.size_summary` of the non-edge particles
        with a fit (``n``, ``n_edge``, ``mean_nm``, ``rsd_percent`` ...) plus
        the analysis settings (``diameter_range_nm``, ``probe_sigma_nm``, ``noise``).
    labels : ndarray of int32
        Label image (0 = background, ``table.label`` otherwise) for overlays.
    pixel_size_nm : (float, float)
        Pixel size (y, x) in nm.
    source : str or None
        File the image came from.
    background : ndarray
        The estimated background (float32, full resolution; computed on first access).
    """

    table: Any
    summary: dict
    labels: np.ndarray
    pixel_size_nm: tuple[float, float]
    source: str | None = None
    background_grid: tuple | None = None  # (background on blocks of f px, f)
    settings: dict = field(default_factory=dict)

    @property
    def background(self) -> np.ndarray | None:
        """Estimated background at full resolution (interpolated from the detection grid)."""
        if self.background_grid is None:
            return None
        bg, f = self.background_grid
        return _resample(bg, f, 1, self.labels.shape)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def diameters_nm(self) -> np.ndarray:
        """Model-fit diameters of the particles used in the statistics."""
        t = self.table
        return t["diameter_nm"].to_numpy(float)[t["in_statistics"].to_numpy(bool)]

    def to_dict(self) -> dict:
        """The JSON contract: ``schema_version``, ``file``, ``pixel_size_nm``, ``particles`` (list of dicts), ``summary``."""
        rows = self.table.to_dict(orient="records")
        return {
            "schema_version": PARTICLES_SCHEMA_VERSION,
            "file": self.source,
            "pixel_size_nm": [float(v) for v in self.pixel_size_nm],
            "n_particles": len(rows),
            "particles": rows,
            "summary": self.summary,
            "settings": self.settings,
        }

    def to_csv(self, path) -> None:
        """Write :attr:`table` as CSV (one row per particle)."""
        from ..serialize import atomic_write_text

        atomic_write_text(path, self.table.to_csv(index=False))

    def __repr__(self) -> str:
        s = self.summary
        if s.get("n"):
            return (
                f"ParticleResult({len(self.table)} particles, n={s['n']} in stats, "
                f"mean {s['mean_nm']:.3g} nm, RSD {s['rsd_percent']:.3g}%)"
            )
        return f"ParticleResult({len(self.table)} particles)"


def _empty_table():
    import pandas as pd

    cols = {c: pd.Series(dtype=float) for c in TABLE_COLUMNS}
    for c in ("label", "fit_group"):
        cols[c] = pd.Series(dtype=np.int64)
    for c in ("edge", "cluster_unsplit", "fit_ok", "in_statistics"):
        cols[c] = pd.Series(dtype=bool)
    for c in ("status", "reject_reason"):
        cols[c] = pd.Series(dtype=str)
    return pd.DataFrame(cols)
