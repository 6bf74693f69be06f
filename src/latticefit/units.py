"""Length units and pixel sizes.

Microscope files spell lengths in many ways: ``m``, ``µm``/``um``/``μm``,
``nm``, the ``n_m`` that real Berkeley EMD files carry, ``A``/``Å``/
``angstrom``, ``pm``. Everything in latticefit is normalised to nanometres.
A bare number given as a pixel size means nm.

Examples
--------
>>> unit_to_nm("µm")
1000.0
>>> parse_length_nm("0.21A")
0.021
>>> parse_length_nm("0.021")
0.021
"""

from __future__ import annotations

import math
import re

from .errors import CalibrationError, UnitError

__all__ = ["unit_to_nm", "is_empty_unit", "parse_length_nm", "pixel_size_pair_nm", "UNIT_TO_NM"]

#: nanometres per unit, keyed by the normalised spelling
UNIT_TO_NM: dict[str, float] = {
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
    "meters": 1e9,
    "metres": 1e9,
    "mm": 1e6,
    "millimeter": 1e6,
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "nanometers": 1.0,
    "a": 0.1,
    "angstrom": 0.1,
    "angstroms": 0.1,
    "ang": 0.1,
    "pm": 1e-3,
    "picometer": 1e-3,
    "picometre": 1e-3,
}

_EMPTY = {"", "<undefined>", "undefined", "none", "px", "pixel", "pixels", "t.b.d.", "unknown"}

# micro signs: U+00B5 MICRO SIGN, U+03BC GREEK SMALL LETTER MU; angstrom: U+00C5, U+212B
_CHAR_MAP = str.maketrans({"\u00b5": "u", "\u03bc": "u", "\u00c5": "a", "\u212b": "a"})


def _normalise(unit: str) -> str:
    u = str(unit).strip().translate(_CHAR_MAP).lower()
    u = u.replace("_", "").replace(" ", "")  # 'n_m' -> 'nm'
    return u


def is_empty_unit(unit) -> bool:
    """True when a unit string carries no information (``None``, ``''``, ``<undefined>``, ``px``)."""
    if unit is None:
        return True
    if isinstance(unit, str):  # never traits' Undefined: no need to import traits (a tenth of a second)
        return _normalise(unit) in _EMPTY
    try:
        import traits.api as _t  # hyperspy's Undefined

        if unit is _t.Undefined:
            return True
    except Exception:  # pragma: no cover - traits is a hyperspy dependency
        pass
    return _normalise(unit) in _EMPTY


def unit_to_nm(unit) -> float:
    """Nanometres per ``unit``.

    Parameters
    ----------
    unit : str
        A length unit as files spell it (``'m'``, ``'µm'``, ``'n_m'``, ``'Å'``, ``'pm'`` ...).

    Returns
    -------
    float
        The factor that turns a length in ``unit`` into nm.

    Raises
    ------
    UnitError
        For an empty or unknown unit (use :func:`is_empty_unit` first to treat
        empty units as an assumption).

    Examples
    --------
    >>> unit_to_nm("n_m"), unit_to_nm("Å"), unit_to_nm("pm")
    (1.0, 0.1, 0.001)
    """
    if is_empty_unit(unit):
        raise UnitError("empty length unit")
    key = _normalise(unit)
    if key in UNIT_TO_NM:
        return UNIT_TO_NM[key]
    raise UnitError(f"unknown length unit {unit!r} (known: m, mm, um/µm, nm, A/Å, pm)")


_NUM_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].*)?\s*$")


def parse_length_nm(value) -> float:
    """Parse a length such as ``0.021nm``, ``0.21 A``, ``21pm`` or a bare number (nm) into nm.

    Raises
    ------
    CalibrationError
        If the text is not a positive finite length.

    Examples
    --------
    >>> parse_length_nm("21 pm")
    0.021
    >>> parse_length_nm(0.5)
    0.5
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number, unit = float(value), "nm"
    else:
        m = _NUM_UNIT.match(str(value))
        if not m:
            raise CalibrationError(f"cannot read a length from {value!r} (e.g. 0.021nm, 0.21A)")
        number = float(m.group(1))
        unit = m.group(2).strip() if m.group(2) else "nm"
    out = number * unit_to_nm(unit)
    if not math.isfinite(out) or out <= 0:
        raise CalibrationError(f"pixel size must be a positive length, got {value!r}")
    return out


def pixel_size_pair_nm(pixel_size) -> tuple[float, float]:
    """Turn a pixel size given as a number, a string or a (y, x) pair into ``(py_nm, px_nm)``."""
    if isinstance(pixel_size, (tuple, list)) or (hasattr(pixel_size, "shape") and getattr(pixel_size, "ndim", 0) == 1):
        vals = list(pixel_size)
        if len(vals) != 2:
            raise CalibrationError(f"pixel size must be one value or a (y, x) pair, got {pixel_size!r}")
        return (parse_length_nm(vals[0]), parse_length_nm(vals[1]))
    v = parse_length_nm(pixel_size)
    return (v, v)
