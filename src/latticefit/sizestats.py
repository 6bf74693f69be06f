"""Deprecated alias of :mod:`latticefit.particles._sizestats`; import from :mod:`latticefit.particles` instead.

Kept for one release (0.2) after the move to subpackages; removed in 0.3.
"""

import sys
import warnings

from .particles import _sizestats as _module

warnings.warn(
    "latticefit.sizestats moved to latticefit.particles in 0.2; this alias will be removed in 0.3",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _module
