"""Interactive notebook tools: :func:`pick_regions` / :class:`RegionPicker`, a live FFT region picker.

Works headless (its callbacks can be driven, e.g. ``RegionPicker.set_region``); interactive in Jupyter
with ipympl (``pip install "latticefit[interactive]"``, then ``%matplotlib widget``).
"""

from __future__ import annotations

from ._picker import RegionPicker, pick_regions

__all__ = ["RegionPicker", "pick_regions"]
