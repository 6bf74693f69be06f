"""The spots of one tile of the image, measured for the systematic-error estimate (``lattice._systematic``).

A tile is compared with the analysed region reflection by reflection, so it needs the region's own
measurement up to the refined, significant spots: the spectrum, the detection of every candidate, the
joint maximum-likelihood refinement of all of them (a tone left out of the joint fit biases its
neighbours: on a real HAADF scan the scan-ghost reflections are candidates too) and the significance,
d-range and fringe-count tests. The plausibility checks, the indexing and the result tables of
:func:`latticefit.lattice.measure_lattice` serve a reported measurement; the tile's spots are matched
to the region's reflections instead (within ``_systematic.MATCH_TOLERANCE``), which refuses what they
would. Each step is the same function the whole measurement calls (``lattice._steps``).
"""

from __future__ import annotations

import numpy as np

from ..spectrum import FFT_WORKERS, half_plane_power
from . import _steps as st

__all__ = ["tile_spots"]


def tile_spots(mg, tile, options: dict):
    """``(g, cov)`` of the significant spots in the rectangle ``tile = (x, y, w, h)`` of a calibrated image.

    ``g`` (n, 2) is (gx, gy) in 1/nm in the half plane, strongest first; ``cov`` (n, 2, 2) their Fisher
    covariances in (1/nm)^2. ``options`` are :func:`measure_lattice`'s (``d_range_angstrom`` parsed, in
    Å). None when the tile holds NaN or infinite pixels (it is then measured the long way, masked).

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, _ = synth.cubic_001(shape=(256, 256), noise_sigma=0.5, seed=2)
    >>> g, cov = tile_spots(mg, (0, 0, 128, 128), {})
    >>> len(g) >= 4, bool(np.all(cov[:, 0, 0] > 0))
    (True, True)
    """
    x, y, w, h = (int(v) for v in tile)
    if mg.invalid_mask is not None and mg.invalid_mask[y : y + h, x : x + w].any():
        return None
    sub = np.asarray(mg.data[y : y + h, x : x + w], dtype=np.float32)
    empty = np.zeros((0, 2)), np.zeros((0, 2, 2))
    if float(np.ptp(sub)) == 0.0:
        return empty
    pyx = tuple(mg.require_calibration())
    B = mg.reciprocal_matrix
    d_range_nm = st.d_range_in_nm(options.get("d_range_angstrom"))
    P, U = half_plane_power(sub, None, "periodic", workers=options.get("workers", FFT_WORKERS))
    p_false, max_spots = options.get("p_false", st.DEFAULT_P_FALSE), options.get("max_spots", st.DEFAULT_MAX_SPOTS)
    window_bins = options.get("window_bins", st.DEFAULT_WINDOW_BINS)
    fits = st.detect_and_refine(P, U, sub, None, pyx, d_range_nm, p_false, max_spots, window_bins, {})
    spots, _ = st.measurable_spots(fits, options.get("min_snr", st.DEFAULT_MIN_SNR), (h, w), B, d_range_nm, [])
    return st.spots_in_inv_nm(spots, B) if spots else empty
