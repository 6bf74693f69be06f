"""latticefit at home in hyperspy and Jupyter.

- :func:`to_signal`, :func:`add_markers`, :func:`fft_signal`, :func:`spot_markers`, :func:`particle_markers`,
  :func:`anomaly_signal`: results as hyperspy signals and markers (calibrated axes);
- :func:`to_hyperspy_roi`: a latticefit region as a hyperspy ROI (the inverse of
  :func:`latticefit.roi.from_hyperspy_roi`; every analysis function accepts hyperspy ROIs directly);
- :func:`save_result`, :func:`load_result`, :func:`provenance`: results saved with the analysed image and
  their provenance (``.hspy``/``.zspy``/``.json``) and re-opened.
"""

from __future__ import annotations

from ._hyperspy import (
    add_markers,
    anomaly_signal,
    fft_signal,
    image_signal,
    particle_markers,
    spot_markers,
    to_hyperspy_roi,
    to_signal,
)
from ._provenance import SavedResult, file_sha256, load_result, provenance, save_result

__all__ = [
    "fft_signal",
    "spot_markers",
    "particle_markers",
    "add_markers",
    "to_signal",
    "anomaly_signal",
    "to_hyperspy_roi",
    "image_signal",
    "provenance",
    "save_result",
    "load_result",
    "SavedResult",
    "file_sha256",
]
