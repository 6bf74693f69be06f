"""latticefit at home in hyperspy and Jupyter.

- :func:`to_signal`, :func:`add_markers`, :func:`fft_signal`, :func:`spot_markers`, :func:`particle_markers`,
  :func:`anomaly_signal`: results as hyperspy signals and markers (calibrated axes);
- :func:`to_hyperspy_roi`: a latticefit region as a hyperspy ROI (the inverse of
  :func:`latticefit.roi.from_hyperspy_roi`; every analysis function accepts hyperspy ROIs directly);
- :func:`save_result`, :func:`load_result`, :func:`provenance`: results saved with the analysed image and
  their provenance (``.hspy``/``.zspy``/``.json``) and re-opened.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

# name -> submodule, imported on first use (PEP 562): `latticefit lattice` needs `provenance` only, and the
# hyperspy helpers import the FFT module (scipy.fft, numba) that a command reading a file does not need
_LAZY = {
    "add_markers": "._hyperspy",
    "anomaly_signal": "._hyperspy",
    "fft_signal": "._hyperspy",
    "image_signal": "._hyperspy",
    "particle_markers": "._hyperspy",
    "spot_markers": "._hyperspy",
    "to_hyperspy_roi": "._hyperspy",
    "to_signal": "._hyperspy",
    "SavedResult": "._provenance",
    "file_sha256": "._provenance",
    "load_result": "._provenance",
    "provenance": "._provenance",
    "save_result": "._provenance",
}

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


__getattr__, __dir__ = lazy_attributes(globals(), {name: (module, name) for name, module in _LAZY.items()})
del lazy_attributes
