"""The record an analyzer returns for one image (shared by the task runner and the analyzers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AnalysisOutcome", "Analyzer"]


@dataclass
class AnalysisOutcome:
    """What an analyzer returns for one image.

    Parameters
    ----------
    summary : dict
        Key numbers (scalars) for ``summary.csv``, e.g. ``{"n_spots": 6, "d_angstrom": 4.19}``.
    result : object
        The full result, JSON-ready or with ``to_dict()``; written to the per-file JSON.
    spots, particles : DataFrame, optional
        Rows for ``spots.csv`` / ``particles.csv``.
    figure : matplotlib Figure or bytes, optional
        The per-file figure (a Figure is rendered to PNG in the worker).
    """

    summary: dict
    result: Any = None
    spots: Any = None
    particles: Any = None
    figure: Any = None
    notes: list = field(default_factory=list)


#: an analyzer: ``fn(micrograph, settings) -> AnalysisOutcome``
Analyzer = Callable[[Any, Mapping[str, Any]], AnalysisOutcome]
