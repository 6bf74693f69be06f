"""Deprecated alias of :mod:`latticefit.crystal._scattering`; import from :mod:`latticefit.crystal` instead.

Kept for one release (0.2) after the move to subpackages; removed in 0.3.
"""

import sys
import warnings

from .crystal import _scattering as _module

warnings.warn(
    "latticefit.scattering moved to latticefit.crystal in 0.2; this alias will be removed in 0.3",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _module
