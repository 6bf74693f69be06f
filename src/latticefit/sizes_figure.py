"""Deprecated alias of :mod:`latticefit.report._sizes`; import from :mod:`latticefit.report` instead.

Kept for one release (0.2) after the move to subpackages; removed in 0.3.
"""

import sys
import warnings

from .report import _sizes as _module

warnings.warn(
    "latticefit.sizes_figure moved to latticefit.report in 0.2; this alias will be removed in 0.3",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _module
