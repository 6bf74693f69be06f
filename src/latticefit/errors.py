"""Exceptions and warnings raised by latticefit.

Every error latticefit raises on purpose derives from :class:`LatticefitError`.
Its message is one line that names the file (when there is one) and the
problem, so that the command line can print it as is and exit non-zero.
"""

from __future__ import annotations

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


class LatticefitWarning(UserWarning):
    """Something the user should know about that does not stop the analysis."""


class CalibrationWarning(LatticefitWarning):
    """The calibration was assumed (e.g. empty units taken as nm) or is absent."""
