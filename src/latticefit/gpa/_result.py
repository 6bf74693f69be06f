"""The result of :func:`latticefit.gpa.strain_map`: calibrated maps, their 1-sigma maps, and the method."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LatticefitError
from ..serialize import atomic_write_bytes, dumps
from ._derived import LAZY_MAPS, DerivedMaps

__all__ = ["MAP_NAMES", "SCHEMA_VERSION", "StrainMap"]

SCHEMA_VERSION = "latticefit.gpa/1"
#: the strain-like maps (dimensionless; rotation in rad) that carry a sigma map
MAP_NAMES = ("exx", "eyy", "exy", "rotation_rad", "dilatation")
#: every array written to .npz / .hspy, with its unit
ARRAY_UNITS = {
    "exx": "1",
    "eyy": "1",
    "exy": "1",
    "rotation_rad": "rad",
    "dilatation": "1",
    "sigma_exx": "1",
    "sigma_eyy": "1",
    "sigma_exy": "1",
    "sigma_rotation_rad": "rad",
    "sigma_dilatation": "1",
    "ux_nm": "nm",
    "uy_nm": "nm",
    "phase_g1_rad": "rad",
    "phase_g2_rad": "rad",
    "sigma_phase_g1_rad": "rad",
    "sigma_phase_g2_rad": "rad",
    "amplitude_g1": "image units",
    "amplitude_g2": "image units",
}


@dataclass(eq=False)
class StrainMap:
    """Geometric phase analysis of one image.

    Attributes
    ----------
    exx, eyy, exy, rotation_rad, dilatation : ndarray (float32)
        Components of ``F - I`` (F: local lattice = F x reference lattice), x =
        column, y = row, in the calibrated frame; ``exy`` is the symmetric
        (tensor) shear, ``rotation_rad`` positive from +x towards +y,
        ``dilatation = exx + eyy``. Dimensionless (0.01 = 1 %).
    sigma_exx, sigma_eyy, sigma_exy, sigma_rotation_rad, sigma_dilatation : ndarray
        Per-pixel 1-sigma (SD) from the noise (Fisher / linear propagation; see
        :func:`strain_map` Notes).
    ux_nm, uy_nm : ndarray
        Displacement relative to the reference lattice, nm, modulo a lattice vector.
    phase_g1_rad, phase_g2_rad, sigma_phase_g1_rad, sigma_phase_g2_rad : ndarray
        The geometric phases (wrapped to (-pi, pi]) and their 1-sigma.
    amplitude_g1, amplitude_g2 : ndarray
        Local fringe amplitude ``a`` of ``a cos(2 pi g.r + P)`` in image units.

        The sigma, displacement, phase and amplitude maps are computed when first read, each group
        in one pass (``gpa._derived``), and then kept.
    derived : DerivedMaps
        What those maps are computed from.
    valid : ndarray of bool
        Pixels farther than 4 point-spread sigmas from the image edge.
    reference_mask : ndarray of bool
        The pixels g was refined on (mean strain zero there).
    g_inv_nm, g_initial_inv_nm : (2, 2) ndarray
        Refined and starting reflections, rows (gx, gy), 1/nm.
    g_px : (2, 2) ndarray
        Refined reflections in cycles/px.
    matrix_nm_per_px : (2, 2) ndarray
        Pixel-to-nm matrix used ((x_px, y_px) -> (x_nm, y_nm)).
    sigma_nm : float
        Spatial resolution: SD of the Gaussian real-space point spread (nm).
    mask_sigma_inv_nm : float
        SD of the Gaussian Fourier mask, ``1 / (2 pi sigma_nm)`` (1/nm).
    noise_sigma_per_px : float
        White-noise SD per pixel measured between the reflections (image units).
    systematic_sd : dict
        Per map of ``MAP_NAMES``: its spread over the reference region beyond the noise,
        ``sqrt(max(<v^2> - <sigma^2>, 0))`` (scan distortion, drift, thickness, specimen; see
        :func:`latticefit.gpa._systematic.pixel_floor`), 1 SD, dimensionless (rotation in rad). The noise
        sigma maps do not contain it; :meth:`sigma_total` adds it in quadrature.
    """

    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    rotation_rad: np.ndarray
    dilatation: np.ndarray
    derived: DerivedMaps = field(repr=False)
    valid: np.ndarray
    reference_mask: np.ndarray
    g_inv_nm: np.ndarray
    g_initial_inv_nm: np.ndarray
    g_px: np.ndarray
    matrix_nm_per_px: np.ndarray
    sigma_nm: float
    mask_sigma_inv_nm: float
    noise_sigma_per_px: float
    source: str | None = None
    reference: dict | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    warnings: list = field(default_factory=list)
    #: per field: ((dy, dx, mask) window, noise power per bin, complex field) for exact region SEs
    noise_model: list = field(default_factory=list, repr=False)
    systematic_sd: dict = field(default_factory=dict)

    def sigma_total(self, name: str) -> np.ndarray:
        """1-sigma map of ``name`` with the noise and the map's systematic floor in quadrature."""
        s = getattr(self, f"sigma_{name}")
        floor = float(self.systematic_sd.get(name, 0.0))
        return np.hypot(s, np.float32(floor)) if floor > 0 else s

    # ------------------------------------------------------------------ summaries
    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.exx.shape)

    @property
    def pixel_size_nm(self) -> tuple[float, float]:
        """(y, x) pixel size in nm: the column norms of the pixel-to-nm matrix."""
        c = self.matrix_nm_per_px
        return float(np.hypot(c[0, 1], c[1, 1])), float(np.hypot(c[0, 0], c[1, 0]))

    @property
    def resolution_fwhm_nm(self) -> float:
        """FWHM of the real-space point spread, nm."""
        return 2.0 * math.sqrt(2.0 * math.log(2.0)) * self.sigma_nm

    def region_mean(self, name: str, mask=None) -> tuple[float, float]:
        """Mean of map ``name`` over ``mask`` (default: the valid pixels) and its standard error (1 SE).

        The SE is exact for white noise (Fisher, same model as the sigma maps):
        the mean over a region R of a phase-gradient map is a linear filter of
        the noise, ``var = P / (2 N^2 |h|^2) sum_k M(k)^2 |sum_j c_j sin(2 pi dk_j)|^2 |R(k)|^2 / n_R^2``
        with R(k) the DFT of the region, ``c`` the weights of the map on the
        gradients and ``1/|h|^2`` averaged over R. It is much smaller than
        ``sigma / sqrt(n)`` because the mean of a derivative telescopes to the
        region's boundary. Without the noise model it falls back to
        ``sigma_rms / sqrt(n / (4 pi sigma_px^2))``.
        """
        m = self.valid if mask is None else (np.asarray(mask, dtype=bool) & self.valid)
        v = getattr(self, name)[m].astype(np.float64)
        if v.size == 0:
            return float("nan"), float("nan")
        mean = float(v.mean())
        if not self.noise_model:
            s = getattr(self, f"sigma_{name}")[m].astype(np.float64)
            sig_px = self.sigma_nm / math.sqrt(abs(np.linalg.det(self.matrix_nm_per_px)))
            n_eff = max(1.0, v.size / (4.0 * math.pi * sig_px**2))
            return mean, float(math.sqrt(np.mean(s**2) / n_eff))
        from ._strain import map_gradient_weights

        dm = map_gradient_weights(self.g_px, self.matrix_nm_per_px)[name]
        ny, nx = self.shape
        r_hat = np.fft.fft2(m.astype(np.float64))
        var = 0.0
        for kk, ((dy, dx, mk), p_bin, h) in enumerate(self.noise_model):
            dyb, dxb = np.broadcast_arrays(dy, dx)
            transfer = dm[kk, 0] * np.sin(2 * np.pi * dxb / nx) + dm[kk, 1] * np.sin(2 * np.pi * dyb / ny)
            rk = r_hat[np.mod(dyb, ny), np.mod(dxb, nx)]
            inv_h2 = float(np.mean(1.0 / np.maximum(np.abs(h[m]).astype(np.float64) ** 2, 1e-30)))
            var += (
                p_bin
                / (2.0 * (nx * ny) ** 2)
                * inv_h2
                * float(np.sum(mk**2 * transfer**2 * np.abs(rk) ** 2))
                / v.size**2
            )
        return mean, float(math.sqrt(var))

    def to_dict(self) -> dict:
        """JSON summary (schema ``latticefit.gpa/1``): method, g, resolution, per-map statistics in %."""
        gi = self.g_initial_inv_nm
        g = self.g_inv_nm
        shift = [float(np.linalg.norm(g[i] - gi[i]) / np.linalg.norm(gi[i]) * 100) for i in range(2)]
        stats = {}
        for name in MAP_NAMES:
            v = getattr(self, name)[self.valid].astype(np.float64)
            s = getattr(self, f"sigma_{name}")[self.valid].astype(np.float64)
            unit = "mrad" if name == "rotation_rad" else "percent"
            k = 1e3 if name == "rotation_rad" else 100.0
            key = name.replace("_rad", "")
            z = np.abs(v) / s
            floor = float(self.systematic_sd.get(name, 0.0))
            z_tot = np.abs(v) / np.hypot(s, floor)
            stats[key] = {
                f"mean_{unit}": float(v.mean() * k) if v.size else None,
                f"sd_{unit}": float(v.std() * k) if v.size else None,
                f"median_sigma_{unit}": float(np.median(s) * k) if v.size else None,
                "fraction_beyond_2sigma": float((z > 2).mean()) if v.size else None,
                f"systematic_sd_{unit}": floor * k,
                "fraction_beyond_2sigma_total": float((z_tot > 2).mean()) if v.size else None,
            }
        ny, nx = self.shape
        return {
            "schema_version": SCHEMA_VERSION,
            "file": self.source,
            "shape_px": [ny, nx],
            "pixel_size_nm": list(self.pixel_size_nm),
            "matrix_nm_per_px": self.matrix_nm_per_px.tolist(),
            "g_inv_nm": g.tolist(),
            "g_initial_inv_nm": gi.tolist(),
            "g_refinement_shift_percent": shift,
            "d_angstrom": [float(10.0 / np.linalg.norm(v)) for v in g],
            "resolution_sigma_nm": self.sigma_nm,
            "resolution_fwhm_nm": self.resolution_fwhm_nm,
            "mask_sigma_inv_nm": self.mask_sigma_inv_nm,
            "edge_excluded_px": int(np.argmax(self.valid[ny // 2])) if self.valid.any() else None,
            "reference": self.reference if self.reference is not None else "whole field (valid pixels)",
            "noise_sigma_per_px": self.noise_sigma_per_px,
            "uncertainty_method": (
                "Fisher (linear propagation) of white noise measured between the reflections; "
                "1-sigma SD per pixel, correlated over the point spread; systematic_sd: the spread of each map "
                "over the reference region beyond that noise (scan distortion, drift, specimen), 1 SD, in "
                "quadrature for the total"
            ),
            "strain_definition": (
                "F - I, local lattice = F x reference lattice (finite, F = (I - D)^-1); "
                "x = column, y = row; rotation positive from +x towards +y; dilatation = exx + eyy"
            ),
            "maps_valid": stats,
            "warnings": list(self.warnings),
        }

    def summary_lines(self) -> list[str]:
        """A few readable lines (values in %, rotation in mrad; ± is the SD over the valid pixels)."""
        d = self.to_dict()
        lines = [
            f"g1 = ({d['g_inv_nm'][0][0]:.4f}, {d['g_inv_nm'][0][1]:.4f})/nm (d = {d['d_angstrom'][0]:.4f} Å), "
            f"g2 = ({d['g_inv_nm'][1][0]:.4f}, {d['g_inv_nm'][1][1]:.4f})/nm (d = {d['d_angstrom'][1]:.4f} Å); "
            f"refined by {d['g_refinement_shift_percent'][0]:.3f} %, {d['g_refinement_shift_percent'][1]:.3f} %",
            f"resolution: sigma {self.sigma_nm:.3g} nm (FWHM {self.resolution_fwhm_nm:.3g} nm), "
            f"mask sigma {self.mask_sigma_inv_nm:.3g}/nm",
        ]
        for key, st in d["maps_valid"].items():
            u = "mrad" if key == "rotation" else "%"
            uk = "mrad" if key == "rotation" else "percent"
            lines.append(
                f"{key:>10}: mean {st[f'mean_{uk}']:+.3f} {u}, SD over map {st[f'sd_{uk}']:.3f} {u}, "
                f"median sigma (noise) {st[f'median_sigma_{uk}']:.3f} {u}, beyond 2 sigma "
                f"{st['fraction_beyond_2sigma']:.1%}; systematic {st[f'systematic_sd_{uk}']:.3f} {u} (1 SD), "
                f"beyond 2 total sigma {st['fraction_beyond_2sigma_total']:.1%}"
            )
        return lines

    # ------------------------------------------------------------------ arrays
    def arrays(self) -> dict[str, np.ndarray]:
        """Every map by name (see ``ARRAY_UNITS``), plus ``valid`` and ``reference_mask``."""
        out = {name: getattr(self, name) for name in ARRAY_UNITS}
        out["valid"] = self.valid
        out["reference_mask"] = self.reference_mask
        return out

    def to_signal(self, name: str | None = None):
        """Hyperspy ``Signal2D`` with calibrated axes (y, x in nm).

        With ``name`` one map; without, a stack of all maps of ``ARRAY_UNITS``
        along a navigation axis ``map`` (names in ``metadata.GPA.map_names``).
        """
        import hyperspy.api as hs

        names = list(ARRAY_UNITS) if name is None else [name]
        if name is not None and name not in ARRAY_UNITS:
            raise LatticefitError(f"no map {name!r}; choose from {', '.join(ARRAY_UNITS)}")
        data = np.stack([getattr(self, n) for n in names]) if name is None else getattr(self, name)
        s = hs.signals.Signal2D(np.asarray(data, dtype=np.float32))
        py, px = self.pixel_size_nm
        ax_x, ax_y = s.axes_manager.signal_axes
        ax_y.name, ax_y.scale, ax_y.units = "y", py, "nm"
        ax_x.name, ax_x.scale, ax_x.units = "x", px, "nm"
        if name is None:
            s.axes_manager.navigation_axes[0].name = "map"
        s.metadata.General.title = f"GPA {name or 'maps'}" + (f" of {Path(self.source).name}" if self.source else "")
        s.metadata.set_item("GPA.map_names", names)
        s.metadata.set_item("GPA.map_units", [ARRAY_UNITS[n] for n in names])
        s.metadata.set_item("GPA.summary_json", dumps(self.to_dict(), indent=None))
        if name is not None:
            s.metadata.set_item("Signal.quantity", f"{name} ({ARRAY_UNITS[name]})")
        return s

    def save(self, path) -> Path:
        """Write the maps to ``.npz`` (arrays + ``summary_json``) or ``.hspy`` (the :meth:`to_signal` stack)."""
        path = Path(path)
        ext = path.suffix.lower()
        if ext == ".npz":
            import io

            buf = io.BytesIO()
            np.savez_compressed(
                buf,
                **self.arrays(),
                g_inv_nm=self.g_inv_nm,
                matrix_nm_per_px=self.matrix_nm_per_px,
                summary_json=np.array(dumps(self.to_dict(), indent=None)),
            )
            atomic_write_bytes(path, buf.getvalue())
        elif ext in (".hspy", ".hdf5"):
            path.parent.mkdir(parents=True, exist_ok=True)
            self.to_signal().save(str(path), overwrite=True)
        else:
            raise LatticefitError(
                f"output {path}: maps are written as .npz or .hspy, got {path.suffix or 'no extension'!r}"
            )
        return path

    def __repr__(self) -> str:
        ny, nx = self.shape
        return (
            f"StrainMap({nx}x{ny} px, resolution sigma {self.sigma_nm:.3g} nm, "
            f"d = {', '.join(f'{10 / np.linalg.norm(v):.3f}' for v in self.g_inv_nm)} Å, source={self.source!r})"
        )


def _lazy_map(name: str) -> property:
    def get(self) -> np.ndarray:
        return self.derived.get(name)

    get.__doc__ = f"``{name}``, computed on first use (``gpa._derived``)."
    return property(get)


for _name in LAZY_MAPS:
    setattr(StrainMap, _name, _lazy_map(_name))
