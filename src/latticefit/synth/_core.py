"""Synthetic micrographs with exact ground truth (deterministic, seeded).

Two image families, each returned as ``(Micrograph, truth)``:

- :func:`lattice_image` (and the presets :func:`perovskite_111`,
  :func:`rocksalt_111`, :func:`cubic_001`): an HRTEM-like image of a 2-D
  Bravais net of Gaussian columns with any basis, rotation, pixel size and
  noise, optionally with embedded disks ("inclusions", e.g. quantum dots)
  whose lattice parameter differs by a given mismatch. The truth is a
  :class:`LatticeTruth` (real and reciprocal basis, first-order reflections,
  their d-spacings in Å, azimuths, the angle between plane families).
- :func:`haadf_dots` (and :func:`haadf_particles_image` for a given particle
  list): a HAADF-STEM field of spherical particles whose intensity is their
  projected thickness, over a slowly varying background, blurred by the probe,
  with Poisson noise; some particles touch in pairs, some are cut by the
  border. The truth is a :class:`ParticleTruth` (every particle's centre in
  pixels and diameter in nm).
- :func:`fig4_pair`: an HRTEM perovskite [111] image with four embedded dots
  and a HAADF image of the same field with the same dots.

Conventions
-----------
- Pixel ``(row, col)`` has its centre at integer coordinates ``x = col``,
  ``y = row``; x points right, y points down. A physical position is
  ``(x * pixel_size_x, y * pixel_size_y)`` nm. Pixel ``col`` covers
  ``[col - 0.5, col + 0.5]``; the image covers ``[-0.5, width - 0.5]``.
- Vectors are ``(x, y)`` pairs: real space in nm, reciprocal space ``(gx, gy)``
  in 1/nm. An azimuth is measured from +x towards +y (clockwise on screen).
- ``rotation_deg`` is the direction of the first lattice vector ``a1``.

Lattice rendering model
-----------------------
The ideal image of an infinite net of Gaussian columns
``w_j exp(-|r - R - r_j|^2 / 2 sigma^2)`` is the Fourier series

    f(r) = (2 pi sigma^2 / A_cell) sum_G exp(-2 pi^2 sigma^2 |G|^2) F(G) exp(2 pi i G.(r - r0))

over the reciprocal lattice ``G = h b1 + k b2``, with the structure factor
``F(G) = sum_j w_j exp(-2 pi i (h u_j + k v_j))``. It is summed over every
``G`` whose term exceeds ``1e-7`` of the largest, and sampled at the pixel
centres (point sampling, aliasing included, no pixel-area integration). The
image is ``background + contrast * (f - mean f) / (max f - min f)``: its mean
is ``background`` and ``contrast`` is the peak-to-valley amplitude of the
noise-free column pattern; the contrast-to-noise ratio is
``contrast / noise_sigma``. A negative ``contrast`` gives dark columns.

Noise model
-----------
``noise_sigma`` adds Gaussian noise of that standard deviation.
``dose`` draws Poisson noise with ``dose`` electrons per pixel at the
``background`` level: ``image = Poisson(I * dose / background) * background / dose``
(a detector gain of ``background / dose`` counts per electron; with
``background == dose`` the image holds integer counts).

Examples
--------
>>> from latticefit import synth
>>> mg, truth = synth.perovskite_111(shape=(256, 256), seed=1)
>>> truth.d_angstrom.round(3).tolist(), truth.angle_deg
([4.195, 4.195, 4.195], 60.0)
"""

from __future__ import annotations

from ._lattice import (  # noqa: F401
    _add_inclusion,
    _apply_noise,
    _check_shape,
    _fold90,
    _label_cubic_001,
    _label_perovskite_111,
    _label_rocksalt_111,
    _lattice_truth,
    _miller,
    cubic_001,
    lattice_image,
    perovskite_111,
    rocksalt_111,
)
from ._pair import PairTruth, fig4_pair  # noqa: F401
from ._particles import (  # noqa: F401
    ParticleTruth,
    _draw_diameters,
    _place_particles,
    _smooth_background,
    _sphere_chord_primitive,
    _sphere_pixel_means,
    haadf_dots,
    haadf_particles_image,
    sphere_thickness_image,
)
from ._series import (  # noqa: F401
    _SHELL_RTOL,
    _TERM_TOL,
    MAPBBR3_A_NM,
    PBS_A_NM,
    SRTIO3_A_NM,
    _az180,
    _eval_fractional,
    _friedel_representative,
    _net_series,
    _net_vectors,
    _NetSeries,
    _normalise_basis,
    _refine_extremum,
    _render_series,
    _structure_factor,
    reciprocal_basis,
)
from ._truth import LatticeTruth, _enumerate_reflections, _first_order, _jsonable_inclusion, _label_2d  # noqa: F401

__all__ = [
    "LatticeTruth",
    "ParticleTruth",
    "PairTruth",
    "lattice_image",
    "perovskite_111",
    "rocksalt_111",
    "cubic_001",
    "haadf_dots",
    "haadf_particles_image",
    "fig4_pair",
    "reciprocal_basis",
    "sphere_thickness_image",
    "MAPBBR3_A_NM",
    "PBS_A_NM",
    "SRTIO3_A_NM",
]
