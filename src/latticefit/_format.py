"""Numbers with uncertainties, one implementation: ``value ± error`` rounded to the error's precision.

Every table, figure and summary line of latticefit formats a measured value and its uncertainty with
:func:`format_uncertain` (or :func:`round_to_uncertainty` when the two strings go in separate cells).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["format_two_digit", "format_uncertain", "round_to_uncertainty"]


def _first_digit_place(x: float) -> int:
    """Decimal exponent of the leading digit of |x| (0.0031 -> -3)."""
    return int(math.floor(math.log10(abs(x))))


def round_to_uncertainty(value: float, err: float, *, err_digits: int | None = None) -> tuple[str, str]:
    """Value and uncertainty as strings rounded to the uncertainty's precision.

    By default the uncertainty keeps one significant digit, two when its leading
    digit is 1 (0.012 stays 0.012, 0.0031 becomes 0.003); ``err_digits=2`` keeps two
    significant digits always (the lattice tables, mean ± SD). The value is rounded
    to the same decimal place.

    Examples
    --------
    >>> round_to_uncertainty(4.19512, 0.00312)
    ('4.195', '0.003')
    >>> round_to_uncertainty(4.19512, 0.0121)
    ('4.195', '0.012')
    >>> round_to_uncertainty(1234.0, 56.0)
    ('1230', '60')
    >>> round_to_uncertainty(2.748494, 0.000153, err_digits=2)
    ('2.74849', '0.00015')
    """
    place = _first_digit_place(err)
    lead = int(abs(err) / 10.0**place + 1e-9)
    if err_digits is not None:
        place -= int(err_digits) - 1
    elif lead == 1:
        place -= 1
    err_r = round(err, -place)  # a carry (0.0096 -> 0.010) keeps the place: '0.010'
    if err_digits is not None and err_r > 0 and _first_digit_place(err_r) > _first_digit_place(err):
        place += 1  # with a fixed number of digits a carry moves the place: 0.996 -> '1.0', not '1.00'
        err_r = round(err, -place)
    decimals = max(0, -place)
    if decimals:
        return f"{value:.{decimals}f}", f"{err_r:.{decimals}f}"
    return f"{round(value, -place):.0f}", f"{err_r:.0f}"


def format_uncertain(value, err=None, unit: str = "", *, sig: int = 4, err_digits: int | None = None) -> str:
    """``'value ± err unit'`` with sensible significant digits.

    Parameters
    ----------
    value : float
        The measured value.
    err : float or None
        Its standard uncertainty; None, NaN or 0 prints the value alone with
        ``sig`` significant digits.
    unit : str
        Unit appended after a space (no space for ``'°'`` and ``'%'``).
    sig : int
        Significant digits of a value without an uncertainty.
    err_digits : int, optional
        Significant digits of the uncertainty (default: 1, or 2 when its leading digit is 1).

    Examples
    --------
    >>> format_uncertain(4.19512, 0.00312, "Å")
    '4.195 ± 0.003 Å'
    >>> format_uncertain(7.04, float("nan"), "nm")
    '7.040 nm'
    >>> format_uncertain(6.9812, 0.5234, "nm", err_digits=2)
    '6.98 ± 0.52 nm'
    """
    if value is None or not np.isfinite(value):
        text = "n/a"
    elif err is None or not np.isfinite(err) or err <= 0:
        text = f"{value:.{sig}g}" if abs(value) >= 10**sig else f"{value:#.{sig}g}".rstrip(".")
    else:
        v, e = round_to_uncertainty(float(value), float(err), err_digits=err_digits)
        text = f"{v} ± {e}"
    if not unit:
        return text
    sep = "" if unit in ("°", "%") else " "
    return f"{text}{sep}{unit}"


def format_two_digit(value, err=None, unit: str = "") -> str:
    """``value ± error`` with two significant digits on the error (the lattice tables); 5 digits without one.

    Examples
    --------
    >>> format_two_digit(2.748494, 0.000153, "Å")
    '2.74849 ± 0.00015 Å'
    >>> format_two_digit(4.19532, float("nan"))
    '4.1953'
    """
    return format_uncertain(value, err, unit, sig=5, err_digits=2)
