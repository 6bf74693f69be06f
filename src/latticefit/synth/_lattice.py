"""Part of :mod:`_core` (see its docstring): lattice."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidDataError
from ..micrograph import Micrograph
from ..units import pixel_size_pair_nm
from ._inclusion import _add_inclusion
from ._series import (
    MAPBBR3_A_NM,
    PBS_A_NM,
    SRTIO3_A_NM,
    _az180,
    _net_series,
    _net_vectors,
    _NetSeries,
    _normalise_basis,
    _render_series,
    reciprocal_basis,
)
from ._truth import LatticeTruth, _first_order, _label_2d

# ----------------------------------------------------------------------------- noise


def _apply_noise(
    img: np.ndarray, rng: np.random.Generator, *, noise_sigma: float, dose, background: float, source: str
) -> np.ndarray:
    if dose is not None:
        dose = float(dose)
        if not dose > 0:
            raise InvalidDataError(f"dose must be > 0 electrons/px, got {dose}", source)
        if not background > 0:
            raise InvalidDataError(
                f"Poisson noise needs background > 0 (it sets the dose level), got {background}", source
            )
        if float(img.min()) < 0:
            raise InvalidDataError(
                f"noise-free image goes negative (min {float(img.min()):.4g}): raise background or lower contrast "
                "before adding Poisson noise",
                source,
            )
        gain = background / dose
        img = rng.poisson(img.astype(np.float64) / gain).astype(np.float64) * gain
    if noise_sigma:
        if noise_sigma < 0:
            raise InvalidDataError(f"noise_sigma must be >= 0, got {noise_sigma}", source)
        img = img + rng.normal(0.0, float(noise_sigma), size=img.shape)
    return img


def _check_shape(shape, source) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise InvalidDataError(f"shape must be (height, width), got {shape!r}", source) from None
    if h < 2 or w < 2:
        raise InvalidDataError(f"shape must be at least (2, 2), got {shape!r}", source)
    return h, w


# ----------------------------------------------------------------------------- lattice images


def lattice_image(
    shape=(512, 512),
    *,
    pixel_size_nm=0.02,
    a_nm: float = 0.4,
    b_nm: float | None = None,
    gamma_deg: float = 90.0,
    rotation_deg: float = 0.0,
    offset_px=(0.0, 0.0),
    basis=((0.0, 0.0, 1.0),),
    column_sigma_nm: float = 0.04,
    contrast: float = 1.0,
    background: float = 1.0,
    noise_sigma: float = 0.0,
    dose: float | None = None,
    inclusions: Sequence[dict] = (),
    seed: int | None = 0,
    title: str = "HRTEM",
    dtype=np.float64,
    _label_fn=None,
    _source: str = "synth:lattice_image",
):
    """An HRTEM-like image of a 2-D Bravais net of Gaussian columns, with its ground truth.

    Parameters
    ----------
    shape : (int, int)
        Image (height, width) in pixels.
    pixel_size_nm : float or (float, float)
        Pixel size in nm (a number, or a (y, x) pair).
    a_nm, b_nm : float
        Lengths of ``a1`` and ``a2`` in nm (``b_nm`` defaults to ``a_nm``).
    gamma_deg : float
        Angle from ``a1`` to ``a2`` (90 square/rectangular, 120 hexagonal).
    rotation_deg : float
        Direction of ``a1``, degrees from +x towards +y.
    offset_px : (float, float)
        Pixel position (x, y) of the column at fractional (0, 0).
    basis : sequence of (u, v, weight)
        Columns in fractional coordinates of ``a1``, ``a2`` with their weights.
    column_sigma_nm : float
        Gaussian standard deviation of a column in nm.
    contrast : float
        Peak-to-valley amplitude of the noise-free column pattern (negative:
        dark columns). Contrast-to-noise is ``contrast / noise_sigma``.
    background : float
        Mean intensity of the noise-free image.
    noise_sigma : float
        Standard deviation of additive Gaussian noise.
    dose : float, optional
        Electrons per pixel at the ``background`` level for Poisson noise
        (applied before the Gaussian noise; see the module docstring).
    inclusions : sequence of dict
        Embedded disks, each with keys ``x_px``, ``y_px`` (centre, pixels),
        ``radius_nm``, ``mismatch`` (relative change of the lattice
        parameters: ``d_inclusion = d_matrix * (1 + mismatch)``) and
        optionally ``rotation_deg`` (direction of the inclusion's ``a1``;
        default the matrix's), ``contrast`` (default the matrix's) and
        ``edge_nm`` (width of a linear blend at the rim; default 0 = sharp,
        a pixel belongs to the disk when its centre is within the radius).
        The inclusion's net is coherent with the matrix at the disk centre:
        its origin is the matrix lattice point nearest to the centre.
    seed : int, optional
        Seed of ``numpy.random.default_rng`` for the noise.
    title : str
        Micrograph title.
    dtype : numpy dtype
        Precision of the rendering matrix product (``np.float32`` halves the
        time for very large images; the result is float32 either way).

    Returns
    -------
    mg : Micrograph
        Calibrated image (mode ``'HRTEM'``, 300 kV, source ``'synth:lattice_image'``).
    truth : LatticeTruth
        Exact ground truth (see :class:`LatticeTruth`).

    Examples
    --------
    >>> mg, truth = lattice_image((128, 128), pixel_size_nm=0.02, a_nm=0.4)
    >>> mg.pixel_size_nm, truth.d_angstrom.tolist(), truth.angle_deg
    ((0.02, 0.02), [4.0, 4.0], 90.0)
    """
    source = _source
    h, w = _check_shape(shape, source)
    net = _matrix_net(
        pixel_size_nm,
        a_nm=a_nm,
        b_nm=b_nm,
        gamma_deg=gamma_deg,
        rotation_deg=rotation_deg,
        offset_px=offset_px,
        basis=basis,
        column_sigma_nm=column_sigma_nm,
        source=source,
    )
    img = _render_net(net, (h, w), contrast=contrast, background=background, dtype=dtype)
    img, inc_truth = _add_inclusions(
        img, inclusions, net, contrast=contrast, background=background, source=source, label_fn=_label_fn
    )
    rng = np.random.default_rng(seed)
    img = _apply_noise(img, rng, noise_sigma=noise_sigma, dose=dose, background=background, source=source)
    truth = _lattice_truth(
        net,
        contrast=contrast,
        background=background,
        noise_sigma=noise_sigma,
        dose=dose,
        inclusions=inc_truth,
        label_fn=_label_fn,
    )
    mg = _synth_micrograph(
        img, net.ps, source=source, title=title, mode="HRTEM", function=source.split(":", 1)[-1], seed=seed
    )
    return mg, truth


@dataclass(frozen=True)
class _Net:
    """The matrix net of a lattice image: validated cell and basis, real and reciprocal vectors, Fourier series.

    ``a_nm``, ``b_nm``, ``gamma_deg`` and ``rotation_deg`` are kept as given (inclusions rescale them).
    """

    ps: tuple[float, float]
    a_nm: Any
    b_nm: Any
    gamma_deg: Any
    rotation_deg: Any
    basis: tuple[tuple[float, float, float], ...]
    column_sigma_nm: Any
    a1: np.ndarray
    a2: np.ndarray
    b1: np.ndarray
    b2: np.ndarray
    series: _NetSeries
    origin_px: tuple[float, float]


def _matrix_net(
    pixel_size_nm, *, a_nm, b_nm, gamma_deg, rotation_deg, offset_px, basis, column_sigma_nm, source
) -> _Net:
    """Check the cell, basis and column width and build the matrix net (its series must have contrast)."""
    ps = pixel_size_pair_nm(pixel_size_nm)
    b_nm = a_nm if b_nm is None else b_nm
    _check_net(a_nm, b_nm, column_sigma_nm, gamma_deg, source)
    basis = _normalise_basis(basis)
    a1, a2 = _net_vectors(a_nm, b_nm, gamma_deg, rotation_deg)
    b1, b2 = reciprocal_basis(a1, a2)
    series = _net_series(a1, a2, basis, column_sigma_nm)
    if series.p2v <= 1e-12 * max(series.c0, 1e-300):
        raise InvalidDataError(
            "the column pattern has no contrast: the basis weights cancel or the columns are "
            "much wider than the net (lower column_sigma_nm)",
            source,
        )
    origin = (float(offset_px[0]), float(offset_px[1]))
    return _Net(ps, a_nm, b_nm, gamma_deg, rotation_deg, basis, column_sigma_nm, a1, a2, b1, b2, series, origin)


def _render_net(net: _Net, shape, *, contrast, background, dtype) -> np.ndarray:
    """Noise-free float64 image ``background + contrast * pattern`` of the matrix net at every pixel centre."""
    h, w = shape
    rows = np.arange(h, dtype=np.float64)
    cols = np.arange(w, dtype=np.float64)
    img = background + contrast * _render_series(net.series, rows, cols, net.ps, net.origin_px, dtype=dtype)
    return np.asarray(img, dtype=np.float64)


def _add_inclusions(img, inclusions, net: _Net, *, contrast, background, source, label_fn):
    """Blend every inclusion into ``img`` in turn; returns the image and the list of inclusion truth dicts."""
    inc_truth = []
    for n, inc in enumerate(inclusions or ()):
        img, it = _add_inclusion(
            img,
            inc,
            n,
            a_nm=net.a_nm,
            b_nm=net.b_nm,
            gamma_deg=net.gamma_deg,
            rotation_deg=net.rotation_deg,
            basis=net.basis,
            column_sigma_nm=net.column_sigma_nm,
            contrast=contrast,
            background=background,
            ps=net.ps,
            origin=net.origin_px,
            a1=net.a1,
            a2=net.a2,
            source=source,
            label_fn=label_fn,
        )
        inc_truth.append(it)
    return img, inc_truth


def _synth_micrograph(img, ps, *, source, title, mode, function, seed) -> Micrograph:
    """The float32, 300 kV Micrograph of a synthetic image (metadata ``{'synth': {function, seed}}``)."""
    return Micrograph(
        img.astype(np.float32),
        pixel_size_nm=ps,
        source=source,
        title=title,
        mode=mode,
        beam_energy_kv=300.0,
        metadata={"synth": {"function": function, "seed": seed}},
        signals=[title],
        file_format="synth",
    )


def _check_net(a_nm, b_nm, column_sigma_nm, gamma_deg, source) -> None:
    """Positive, finite cell lengths and column width; a1 and a2 not collinear."""
    for name, v in (("a_nm", a_nm), ("b_nm", b_nm), ("column_sigma_nm", column_sigma_nm)):
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v > 0):
            raise InvalidDataError(f"{name} must be a positive number, got {v!r}", source)
    if not 0.0 < float(gamma_deg) % 180.0:
        raise InvalidDataError(f"gamma_deg={gamma_deg} makes a1 and a2 collinear", source)


def _lattice_truth(net: _Net, *, contrast, background, noise_sigma, dose, inclusions, label_fn) -> LatticeTruth:
    """The :class:`LatticeTruth` of the matrix net (first-order reflections, labels, d, azimuths, angle)."""
    first = _first_order(net.b1, net.b2, net.basis)
    g = np.array([f[2] for f in first])
    hk = [(f[0], f[1]) for f in first]
    lab = label_fn or _label_2d
    return LatticeTruth(
        pixel_size_nm=net.ps,
        a1_nm=net.a1,
        a2_nm=net.a2,
        b1_inv_nm=net.b1,
        b2_inv_nm=net.b2,
        g_inv_nm=g,
        hk=hk,
        labels=[lab(a, b) for a, b in hk],
        d_angstrom=10.0 / np.linalg.norm(g, axis=1),
        azimuth_deg=_az180(g),
        angle_deg=_fold90(180.0 - float(net.gamma_deg)),
        basis=tuple(net.basis),
        origin_px=tuple(map(float, net.origin_px)),
        column_sigma_nm=float(net.column_sigma_nm),
        contrast=float(contrast),
        background=float(background),
        noise_sigma=float(noise_sigma),
        dose=None if dose is None else float(dose),
        inclusions=list(inclusions),
        _series=net.series,
        _label_fn=label_fn,
    )


def _fold90(angle: float) -> float:
    angle = angle % 180.0
    return 180.0 - angle if angle > 90.0 else angle


# ----------------------------------------------------------------------------- crystal presets


def _label_perovskite_111(h: int, k: int) -> str:
    # a1 = proj[100], a2 = proj[010] along [111]: (h, k) -> (H K L) = (h, k, -h-k)
    return _miller(h, k, -h - k)


def _label_rocksalt_111(h: int, k: int) -> str:
    # a1 = proj 1/2[110], a2 = proj 1/2[011]: (h, k) -> (-2k, 2h+2k, -2h)
    return _miller(-2 * k, 2 * h + 2 * k, -2 * h)


def _label_cubic_001(h: int, k: int) -> str:
    return _miller(h, k, 0)


def _miller(*ix: int) -> str:
    return "(" + " ".join(str(int(i)) for i in ix) + ")"


def perovskite_111(
    shape=(1024, 1024),
    *,
    pixel_size_nm=0.025,
    a_nm: float = MAPBBR3_A_NM,
    rotation_deg: float = 0.0,
    offset_px=(0.0, 0.0),
    column_sigma_nm: float = 0.08,
    weights=(1.0, 0.35),
    **kwargs,
):
    """ABX3 cubic perovskite (Pm-3m, default MAPbBr3, a = 5.933 Å) viewed along [111].

    The projected columns form a hexagonal net of spacing ``a * sqrt(2/3)``
    (``a1`` = projection of [100], ``a2`` = projection of [010], 120° apart):
    Pb + CH3NH3 columns at the net points and Br columns at the three
    half-way positions. The first-order reflections are the six {1-10} at
    ``d = a / sqrt(2)`` (4.195 Å), 60° apart; the truth lists the three with
    azimuth in [0, 180) and labels them with 3-D Miller indices.

    Parameters
    ----------
    shape, pixel_size_nm, rotation_deg, offset_px, column_sigma_nm
        As in :func:`lattice_image`.
    a_nm : float
        Cubic lattice parameter in nm.
    weights : (float, float)
        Column weights of (Pb + MA) and Br.
    **kwargs
        Passed to :func:`lattice_image` (``contrast``, ``background``,
        ``noise_sigma``, ``dose``, ``inclusions``, ``seed`` ...).

    Examples
    --------
    >>> mg, t = perovskite_111(shape=(256, 256))
    >>> t.labels, round(t.angle_deg, 6)
    (['(1 0 -1)', '(0 1 -1)', '(-1 1 0)'], 60.0)
    """
    p = a_nm * math.sqrt(2.0 / 3.0)
    w0, wbr = (float(w) for w in weights)
    basis = ((0.0, 0.0, w0), (0.5, 0.0, wbr), (0.0, 0.5, wbr), (0.5, 0.5, wbr))
    kwargs.setdefault("title", "HRTEM")
    return lattice_image(
        shape,
        pixel_size_nm=pixel_size_nm,
        a_nm=p,
        b_nm=p,
        gamma_deg=120.0,
        rotation_deg=rotation_deg,
        offset_px=offset_px,
        basis=basis,
        column_sigma_nm=column_sigma_nm,
        _label_fn=_label_perovskite_111,
        _source="synth:perovskite_111",
        **kwargs,
    )


def rocksalt_111(
    shape=(1024, 1024),
    *,
    pixel_size_nm=0.025,
    a_nm: float = PBS_A_NM,
    rotation_deg: float = 0.0,
    offset_px=(0.0, 0.0),
    column_sigma_nm: float = 0.05,
    **kwargs,
):
    """Rock-salt crystal (Fm-3m, default PbS, a = 5.936 Å) viewed along [111].

    Every projected column holds Pb and S (ABC stacking), so the columns form
    a single hexagonal net of spacing ``a / sqrt(6)``. The first-order
    reflections are the six {2-20} at ``d = a / (2 sqrt 2)`` (2.099 Å); the
    {1-10} (4.2 Å) reflections are absent.

    Examples
    --------
    >>> mg, t = rocksalt_111(shape=(128, 128))
    >>> t.d_angstrom.round(4).tolist(), t.labels[0]
    ([2.0987, 2.0987, 2.0987], '(0 2 -2)')
    """
    p = a_nm / math.sqrt(6.0)
    kwargs.setdefault("title", "HRTEM")
    return lattice_image(
        shape,
        pixel_size_nm=pixel_size_nm,
        a_nm=p,
        b_nm=p,
        gamma_deg=120.0,
        rotation_deg=rotation_deg,
        offset_px=offset_px,
        basis=((0.0, 0.0, 1.0),),
        column_sigma_nm=column_sigma_nm,
        _label_fn=_label_rocksalt_111,
        _source="synth:rocksalt_111",
        **kwargs,
    )


def cubic_001(
    shape=(512, 512),
    *,
    a_nm: float = SRTIO3_A_NM,
    pixel_size_nm=0.02,
    rotation_deg: float = 0.0,
    offset_px=(0.0, 0.0),
    column_sigma_nm: float = 0.05,
    basis=((0.0, 0.0, 1.0),),
    **kwargs,
):
    """Simple cubic crystal (default a = 3.905 Å, SrTiO3) viewed along [001]: a square net.

    First-order reflections {100} at ``d = a`` (the truth lists (1 0 0) and
    (0 1 0), 90° apart); :meth:`LatticeTruth.reflections` also gives the
    {110} at ``d = a / sqrt 2``.

    Examples
    --------
    >>> mg, t = cubic_001(shape=(128, 128))
    >>> t.labels, t.d_angstrom.round(4).tolist(), t.angle_deg
    (['(1 0 0)', '(0 1 0)'], [3.905, 3.905], 90.0)
    """
    kwargs.setdefault("title", "HRTEM")
    return lattice_image(
        shape,
        pixel_size_nm=pixel_size_nm,
        a_nm=a_nm,
        b_nm=a_nm,
        gamma_deg=90.0,
        rotation_deg=rotation_deg,
        offset_px=offset_px,
        basis=basis,
        column_sigma_nm=column_sigma_nm,
        _label_fn=_label_cubic_001,
        _source="synth:cubic_001",
        **kwargs,
    )
