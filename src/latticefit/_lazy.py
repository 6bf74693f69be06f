"""Attributes of a package imported on first use (PEP 562), for ``latticefit`` and ``latticefit.interop``."""

from __future__ import annotations

import importlib


def lazy_attributes(namespace: dict, table: dict):
    """``__getattr__`` and ``__dir__`` for the package whose globals are ``namespace``.

    ``table`` maps a name to ``(module, attribute)``: the module (absolute, or relative to the package) is
    imported when the name is first asked for, and the attribute (the module itself when None) is kept in
    the package's globals, so the next access is an ordinary lookup.

    Examples
    --------
    >>> ns = {"__name__": "demo", "__all__": ["sqrt"]}
    >>> getattr_, dir_ = lazy_attributes(ns, {"sqrt": ("math", "sqrt")})
    >>> getattr_("sqrt")(9.0), "sqrt" in ns, dir_()
    (3.0, True, ['__all__', '__name__', 'sqrt'])
    """
    package = namespace["__name__"]

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = table[name]
        mod = importlib.import_module(module, package)
        value = mod if attr is None else getattr(mod, attr)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(namespace["__all__"]))

    return __getattr__, __dir__
