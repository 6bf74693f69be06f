"""Exceptions and warnings raised by latticefit.

Every error latticefit raises on purpose derives from :class:`LatticefitError`.
Its message is one line that names the file (when there is one) and the
problem, so that the command line can print it as is and exit non-zero.
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "LatticefitError",
    "FileReadError",
    "UnsupportedFormatError",
    "DataShapeError",
    "InvalidDataError",
    "CalibrationError",
    "UnitError",
    "SignalSelectionError",
    "RegionError",
    "AnalysisError",
    "ParameterError",
    "check_param",
    "LatticefitWarning",
    "CalibrationWarning",
]


class LatticefitError(Exception):
    """Base class of every error latticefit raises deliberately.

    Parameters
    ----------
    message : str
        One-line description of the problem.
    source : str, optional
        File (or other source) the problem belongs to; it is prefixed to the
        message as ``"<source>: <message>"``.
    """

    def __init__(self, message: str, source: str | None = None):
        self.message = " ".join(str(message).split())  # always one line
        self.source = None if source is None else str(source)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.source:
            return f"{self.source}: {self.message}"
        return self.message

    def with_source(self, source: str | None) -> LatticefitError:
        """Return the same error, naming ``source`` if it named none yet."""
        if self.source is None and source is not None:
            self.source = str(source)
            self.args = (self.__str__(),)
        return self


class FileReadError(LatticefitError):
    """The file is missing, empty, truncated or not what its extension says."""


class UnsupportedFormatError(FileReadError):
    """No reader for this file type."""


class DataShapeError(LatticefitError):
    """The data are not a 2-D image (1-D, 4-D, a stack without ``frame=`` ...)."""


class InvalidDataError(LatticefitError):
    """The pixel values cannot be analysed (all NaN, empty ...)."""


class CalibrationError(LatticefitError):
    """The pixel size is missing, non-positive or not understood."""


class UnitError(CalibrationError):
    """A length unit that latticefit does not know."""


class SignalSelectionError(LatticefitError):
    """``signal=`` names no signal in the file (the message lists the choices)."""


class RegionError(LatticefitError):
    """A region of interest outside the image or too small to analyse."""


class AnalysisError(LatticefitError):
    """An analysis could not be carried out with the given parameters."""


class ParameterError(LatticefitError, ValueError):
    """An argument outside its allowed range (the message names the parameter and the range)."""


def _range_text(lo, hi, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return ""


def check_param(
    name: str,
    value,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
    optional: bool = False,
    source: str | None = None,
):
    """Return ``value`` as a finite float (or int) within its range, else raise :class:`ParameterError`.

    The one check behind every numeric argument of the public functions: the
    message names the parameter, the allowed range and the value given.

    Parameters
    ----------
    name : str
        Parameter name, as the caller spells it.
    value : number or None
        The argument (``None`` passes through when ``optional``).
    lo, hi : float, optional
        Bounds; ``lo_open`` / ``hi_open`` exclude them.
    integer : bool
        Require an integral value (``1.5`` is refused, ``2.0`` gives ``2``).
    optional : bool
        Accept ``None`` (returned as is).
    source : str, optional
        File the call belongs to, prefixed to the message.

    Returns
    -------
    int, float or None

    Raises
    ------
    ParameterError
        For a non-number, a bool, NaN/inf, a non-integer where one is needed or a value out of range.

    Examples
    --------
    >>> check_param("p_false", 1e-3, lo=0, hi=1, lo_open=True, hi_open=True)
    0.001
    >>> check_param("max_spots", -3, lo=1, integer=True)
    Traceback (most recent call last):
    ...
    latticefit.errors.ParameterError: max_spots must be an integer >= 1, got -3
    """
    if value is None and optional:
        return None
    rng = _range_text(lo, hi, lo_open, hi_open)
    what = f"{name} must be {'an integer' if integer else 'a number' if rng else 'a finite number'} {rng}".rstrip()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{what}, got {value!r}", source)
    v = float(value)
    if not math.isfinite(v) or (integer and v != int(v)):
        raise ParameterError(f"{what}, got {value!r}", source)
    bad = (lo is not None and (v < lo or (lo_open and v == lo))) or (
        hi is not None and (v > hi or (hi_open and v == hi))
    )
    if bad:
        raise ParameterError(f"{what}, got {value!r}", source)
    return int(v) if integer else v


class LatticefitWarning(UserWarning):
    """Something the user should know about that does not stop the analysis."""


class CalibrationWarning(LatticefitWarning):
    """The calibration was assumed (e.g. empty units taken as nm) or is absent."""
