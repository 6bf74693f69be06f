"""Part of :mod:`io` (see its docstring): the in-memory image of a file that hyperspy does not read.

ImageJ TIFFs (tifffile) and PNG/JPEG (imageio) arrive as numpy arrays. The loaders only read a few
attributes of a signal (``data``, ``axes_manager.signal_axes`` with ``scale``/``units``/``offset``,
``signal_dimension``, ``navigation_dimension``, ``metadata.get_item``/``has_item`` and
``original_metadata.as_dictionary``), so such an array is wrapped in :class:`PlainSignal2D`, which
answers them as a hyperspy ``Signal2D`` built from the same array does, without importing hyperspy
(about half a second of a command's start-up).
"""

from __future__ import annotations

import copy

import numpy as np

__all__ = ["PlainSignal2D", "plain_signal"]


class _Tree:
    """The read side of hyperspy's ``DictionaryTreeBrowser`` over a nested dict (dotted paths)."""

    def __init__(self, tree: dict | None = None):
        self._tree = copy.deepcopy(tree) if tree else {}

    def _find(self, path: str):
        node = self._tree
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                return False, None
            node = node[key]
        return True, node

    def get_item(self, item_path: str, default=None):
        found, value = self._find(item_path)
        if not found:
            return default
        return _Tree(value) if isinstance(value, dict) else value

    def has_item(self, item_path: str) -> bool:
        return self._find(item_path)[0]

    def as_dictionary(self) -> dict:
        return copy.deepcopy(self._tree)


class _Axis:
    def __init__(self, size: int):
        self.size = int(size)
        self.scale = 1.0
        self.offset = 0.0
        self.units = None  # hyperspy's Undefined: empty (is_empty_unit)
        self.name = None


class _Axes:
    def __init__(self, shape: tuple[int, ...]):
        self.signal_dimension = 2
        self.navigation_dimension = len(shape) - 2
        self.signal_axes = (_Axis(shape[-1]), _Axis(shape[-2]))  # x first, as hyperspy orders them


class PlainSignal2D:
    """A 2-D image (or a stack of them) in memory, with the attributes the loaders read of a Signal2D.

    Examples
    --------
    >>> import numpy as np
    >>> s = plain_signal(np.zeros((3, 16, 32), np.float32), original={"ImageJ": {"unit": "nm"}})
    >>> s.axes_manager.navigation_dimension, [a.size for a in s.axes_manager.signal_axes]
    (1, [32, 16])
    >>> s.metadata.get_item("General.title"), s.original_metadata.as_dictionary()
    ('', {'ImageJ': {'unit': 'nm'}})
    """

    _lazy = False

    def __init__(self, data: np.ndarray, original: dict | None = None):
        self.data = data
        self.axes_manager = _Axes(data.shape)
        self.metadata = _Tree({"General": {"title": ""}})
        self.original_metadata = _Tree(original)


def plain_signal(data, *, scale=None, units: str = "", original: dict | None = None):
    """``data`` as a :class:`PlainSignal2D` (a hyperspy ``Signal2D`` when it is not at least 2-D).

    Parameters
    ----------
    data : array_like
        The pixels; the last two axes are the image (y, x).
    scale : (float, float), optional
        Pixel size along (x, y) in ``units``.
    units : str
        Axis unit (empty: none).
    original : dict, optional
        The file's metadata (``original_metadata``).
    """
    data = np.asanyarray(data)  # as hyperspy keeps it
    if data.ndim < 2:  # hyperspy's Signal2D says what is wrong with such data
        import hyperspy.api as hs

        s = hs.signals.Signal2D(data)
    else:
        s = PlainSignal2D(data, original)
    if scale is not None:
        ax, ay = s.axes_manager.signal_axes
        ax.scale, ay.scale = scale
    if units:
        for a in s.axes_manager.signal_axes:
            a.units = units
    return s
