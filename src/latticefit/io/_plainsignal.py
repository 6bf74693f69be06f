"""Part of :mod:`io` (see its docstring): images read without building hyperspy signals.

The loaders only read a few attributes of a signal (``data``, ``axes_manager.signal_axes`` with
``scale``/``units``/``offset``, ``signal_dimension``, ``navigation_dimension``,
``metadata.get_item``/``has_item``, ``original_metadata.get_item``/``as_dictionary``).
:class:`PlainSignal2D` answers them as a hyperspy ``Signal2D`` does, without importing hyperspy's signal
classes (about half a second of a command's start-up):

- ImageJ TIFFs (tifffile) and PNG/JPEG (imageio) arrive as numpy arrays and are always wrapped;
- a small HyperSpy ``.hspy``/``.hdf5`` file is read by rosettasciio's HSPY reader (the reader
  ``hyperspy.api.load`` calls) and wrapped when its content is a plain calibrated image or stack
  (:func:`read_hspy_plain`); anything else (other signal types, non-uniform axes, markers, signals or
  reserved names inside the metadata, an FEI data bar, ...) returns None and goes through hyperspy.
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

    def __len__(self) -> int:  # as hyperspy counts a node's items
        return len([k for k in self._tree if not str(k).startswith("_")])


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

    def __init__(self, data: np.ndarray, original: dict | None = None, metadata: dict | None = None):
        self.data = data
        self.axes_manager = _Axes(data.shape)
        self.metadata = _Tree({"General": {"title": ""}} if metadata is None else metadata)
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


# names a hyperspy DictionaryTreeBrowser would not keep as plain keys (its methods, its private fields)
_TREE_NAMES = frozenset(
    "add_dictionary add_node as_dictionary copy deepcopy export get_item has_item keys "
    "process_lazy_attributes set_item _db_index _double_lines _lazy_attributes".split()
)
_READ_PATHS = (
    "General.title",
    "Acquisition_instrument.TEM.beam_energy",
    "Acquisition_instrument.SEM.beam_energy",
    "Acquisition_instrument.TEM.acquisition_mode",
)


def _plain_tree(tree) -> bool:
    """Whether hyperspy keeps ``tree`` as it is: no signal, axes or reserved key, and every key an ASCII
    identifier (which hyperspy keeps as its attribute name) or an index such as ``FileIO``'s ``'0'``
    (stored as ``Number_0``, which no sibling may be called).
    """
    if isinstance(tree, dict):
        names = set()
        for k, v in tree.items():
            if not isinstance(k, str) or not k.isascii() or not (k.isidentifier() or k.isdigit()):
                return False
            if k.startswith(("_sig_", "_hspy_", "__")) or k in _TREE_NAMES or not _plain_tree(v):
                return False
            names.add(k if k.isidentifier() else f"Number_{k}")
        return len(names) == len(tree)
    if isinstance(tree, (list, tuple)):
        return all(_plain_tree(v) for v in tree)
    return True


def _plain_axes(axes, shape) -> bool:
    """Uniform axes, one per data axis, the last two the image and at most one navigation axis before."""
    if not isinstance(axes, (list, tuple)) or len(axes) != len(shape) or not 2 <= len(shape) <= 3:
        return False
    for i, a in enumerate(axes):
        if not isinstance(a, dict) or a.get("_type", "UniformDataAxis") != "UniformDataAxis":
            return False
        if "axis" in a or "expression" in a or any(k not in a for k in ("navigate", "scale", "offset", "size")):
            return False
        if a["navigate"] is not (i < len(shape) - 2) or int(a["size"]) != shape[i]:
            return False
        if a.get("units") is not None and not isinstance(a["units"], str):
            return False
        if not isinstance(a["scale"], (int, float, np.number)) or not isinstance(a["offset"], (int, float, np.number)):
            return False
    return True


def _plain_dict(d) -> bool:
    """Whether a rosettasciio signal dictionary is a plain image hyperspy would load as a ``Signal2D``."""
    data, md, om = d.get("data"), d.get("metadata"), d.get("original_metadata", {})
    attrs = d.get("attributes") or {}
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu" or not isinstance(md, dict):
        return False
    if d.get("package") not in (None, "", "hyperspy") or "post_process" in d or "mapping" in d:
        return False
    if attrs.get("_lazy", False) or attrs.get("ragged", False):
        return False
    sig = md.get("Signal", {})
    if not isinstance(sig, dict) or "record_by" in sig or "binned" in sig or sig.get("signal_type", "") != "":
        return False
    if "Markers" in md or not isinstance(om, dict) or "fei_metadata" in om:
        return False
    if not (_plain_tree(md) and _plain_tree(om)):
        return False
    for path in _READ_PATHS:
        found, value = _Tree(md)._find(path)
        if found and isinstance(value, dict):
            return False
    return _plain_axes(d.get("axes"), data.shape)


def _from_dict(d) -> PlainSignal2D:
    s = PlainSignal2D(d["data"], original=d.get("original_metadata") or {}, metadata=d["metadata"])
    ax, ay = s.axes_manager.signal_axes
    for mine, theirs in ((ax, d["axes"][-1]), (ay, d["axes"][-2])):
        mine.scale, mine.offset = float(theirs["scale"]), float(theirs["offset"])
        mine.units, mine.name = theirs.get("units"), theirs.get("name")
    return s


def read_hspy_plain(path) -> list | None:
    """The signals of a small HyperSpy HDF5 file as :class:`PlainSignal2D`, or None (then hyperspy reads it).

    None when the file holds anything but plain calibrated images (see the module docstring), when its
    name is a glob pattern to ``hyperspy.api.load``, or when rosettasciio cannot read it: the caller's
    hyperspy path then reads it (and words its errors) as it always did.
    """
    if any(c in str(path) for c in "*?["):
        return None
    try:
        from rsciio.hspy import file_reader

        dicts = file_reader(str(path), lazy=False)
    except Exception:  # noqa: BLE001 - hyperspy reads it again and names the problem
        return None
    if not dicts or not all(isinstance(d, dict) and _plain_dict(d) for d in dicts):
        return None
    return [_from_dict(d) for d in dicts]
