"""Read microscope files into :class:`~latticefit.micrograph.Micrograph` objects.

Vendor formats are read by rosettasciio through hyperspy (no hand-written
parsers): Gatan ``.dm3``/``.dm4``, Velox and Berkeley ``.emd``, FEI TIA
``.emi``/``.ser``, ``.mrc``, HyperSpy ``.hspy``/``.hdf5`` and FEI/Thermo,
Zeiss or DigitalMicrograph TIFF. ImageJ TIFFs are read with tifffile
(rosettasciio only understands the ``micron`` unit of ImageJ), PNG/JPEG with
imageio (uncalibrated). Every problem becomes a one-line
:class:`~latticefit.errors.LatticefitError` that names the file.

The public functions:

- :func:`load` one 2-D image (``signal=`` picks a detector, ``frame=`` a frame);
- :func:`load_all` every 2-D image of a file (one per detector);
- :func:`inspect` a JSON-ready description of a file without reading a frame;
- :func:`supported_extensions`, :func:`is_supported`, :func:`is_companion_file`
  for finding files in a folder.

hyperspy is imported inside the functions, so ``import latticefit`` stays light.
"""

from __future__ import annotations

from ._budget import _check_unchunked_size, _probe_pixels, check_image_budget, memory_budget_bytes  # noqa: F401
from ._formats import (  # noqa: F401
    _HDF5_MAGIC,
    _LUMA,
    _TEM_CAMERAS,
    FORMATS,
    SUPPORTED_EXTENSIONS,
    FormatInfo,
    _check_path,
    _check_signature,
    _decode_unit,
    _read_imagej_tiff,
    _read_raster,
    _read_signals,
    _rgb_to_grey,
    _tiff_kind,
    is_companion_file,
    is_supported,
    supported_extensions,
)
from ._load import inspect, load, load_all  # noqa: F401
from ._messages import _short_cause  # noqa: F401
from ._signals import (  # noqa: F401
    _close,
    _energy_kv,
    _grey_signal,
    _is_image,
    _mode,
    _open,
    _select,
    _shape_problem,
    _titles,
    _to_micrograph,
)

__all__ = [
    "load",
    "load_all",
    "inspect",
    "supported_extensions",
    "is_supported",
    "is_companion_file",
    "SUPPORTED_EXTENSIONS",
    "FORMATS",
]
