"""latticefit.io: real vendor files, round trips and one-line errors."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from latticefit import io
from latticefit.errors import (
    CalibrationWarning,
    DataShapeError,
    FileReadError,
    InvalidDataError,
    LatticefitError,
    SignalSelectionError,
    UnsupportedFormatError,
)

# relative path, (py_nm, px_nm), load kwargs, expected title
REAL_CALIBRATIONS = [
    ("particles/JEOL HAADF Image.dm4", (1.2490, 1.2490), {}, "JEOL HAADF Image"),
    ("particles/EMDReader_Image_FEI.emd", (5.3024, 5.3024), {}, "HAADF"),
    ("particles/03_Scanning Preview.emi", (0.38435, 0.38435), {"frame": "mean"}, None),
    ("particles/03_Scanning Preview_1.ser", (0.38435, 0.38435), {"frame": 2}, None),
    ("lattice/Acquisition_18.emd", (0.0122465, 0.0122465), {}, "single"),
    ("lattice/Cropped_PTO-SRO_Aligned.hspy", (0.0149968, 0.0149968), {}, "HAADF"),
    ("loaders/test_STEM_image.dm3", (0.24854, 0.24854), {}, "test_STEM_image"),
    ("loaders/multi_signal.dm3", (0.017752, 0.017752), {}, "HAADF"),
    ("loaders/dmTest_float32_nonSquare_diffPixelSize.dm3", (0.2, 1.0), {}, None),
    ("loaders/dmTest_float32_nonSquare_diffPixelSize.dm4", (0.2, 1.0), {}, None),
    ("loaders/128x128-TEM_search.emi", (5.2612, 5.2612), {}, None),
    ("loaders/128x128-TEM_search_1.ser", (5.2612, 5.2612), {}, None),
    ("loaders/fei_example_tem_stack.emd", (0.0081729, 0.0081729), {"frame": 0}, "Ceta"),
    ("loaders/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd", (87.3708, 87.3708), {}, "HAADF"),
    ("loaders/HAADFscan.mrc", (5.6791, 5.6791), {}, None),
    ("loaders/FEI-Helios-Ebeam-16bits.tif", (3372.4, 3372.4), {}, None),
    ("loaders/test_loading_image_saved_with_DM.tif", (168.675, 168.675), {}, None),
]


@pytest.mark.parametrize("rel, ps, kwargs, title", REAL_CALIBRATIONS, ids=[r[0] for r in REAL_CALIBRATIONS])
def test_real_file_calibration(realfile, rel, ps, kwargs, title):
    mg = io.load(realfile(rel), **kwargs)
    assert mg.data.dtype == np.float32 and mg.data.ndim == 2
    assert mg.pixel_size_nm == pytest.approx(ps, rel=1e-4)
    assert mg.source == str(realfile(rel))
    assert mg.file_format
    if title is not None:
        assert mg.title == title


def test_every_real_file_is_covered(realdata):
    """Every data file in the folder is either in the table above or a special case below."""
    special = {"lattice/test_ADF_cropped.hdf5"}
    listed = {r[0] for r in REAL_CALIBRATIONS} | special
    present = {str(p.relative_to(realdata)) for p in realdata.rglob("*") if p.is_file() and io.is_supported(p)}
    assert present - listed == set(), "add the new real files to REAL_CALIBRATIONS"


def test_hdf5_with_empty_units_assumes_nm_and_warns(realfile):
    f = realfile("lattice/test_ADF_cropped.hdf5")
    with pytest.warns(CalibrationWarning, match="assuming nm"):
        mg = io.load(f)
    assert mg.pixel_size_nm == pytest.approx((0.0093263, 0.0093263), rel=1e-4)
    assert mg.shape == (400, 380)
    assert mg.original_dtype == "float16"


def test_metadata_mode_energy_and_format(realfile):
    mg = io.load(realfile("particles/JEOL HAADF Image.dm4"))
    assert mg.beam_energy_kv == 80.0
    assert mg.mode == "HAADF"
    assert mg.file_format == "DigitalMicrograph DM4"
    assert isinstance(mg.metadata, dict) and mg.metadata
    tem = io.load(realfile("loaders/128x128-TEM_search.emi"))
    assert tem.mode == "TEM" and tem.beam_energy_kv == 200.0
    assert io.load(realfile("loaders/FEI-Helios-Ebeam-16bits.tif")).mode == "SEM"
    assert io.load(realfile("lattice/Acquisition_18.emd")).file_format == "Berkeley EMD"


def test_velox_stack_needs_frame(realfile):
    f = realfile("loaders/fei_example_tem_stack.emd")
    with pytest.raises(DataShapeError, match="frame"):
        io.load(f)
    mg = io.load(f, frame="sum")
    assert mg.frames == 2 and mg.shape == (3, 3) and mg.file_format == "Velox EMD"


def test_tia_stack_frame_choices(realfile):
    f = realfile("particles/03_Scanning Preview.emi")
    with pytest.raises(DataShapeError) as ei:
        io.load(f)
    assert "frame" in str(ei.value) and "\n" not in str(ei.value) and str(f) in str(ei.value)
    mean = io.load(f, frame="mean")
    f2 = io.load(f, frame=2)
    assert mean.frames == 5 and mean.mode == "STEM"
    assert not np.array_equal(mean.data, f2.data)
    ser = io.load(realfile("particles/03_Scanning Preview_1.ser"), frame="mean")
    np.testing.assert_allclose(ser.data, mean.data)


def test_multi_signal_dm3(realfile):
    f = realfile("loaders/multi_signal.dm3")
    mg = io.load(f)
    assert mg.title == "HAADF" and mg.signals == ["HAADF", "Plot"] and mg.shape == (512, 512)
    assert io.load(f, signal="haadf").title == "HAADF"
    with pytest.raises(DataShapeError) as ei:
        io.load(f, signal="Plot")
    msg = str(ei.value)
    assert "\n" not in msg and "1-D" in msg and "Plot" in msg and str(f) in msg
    assert [m.title for m in io.load_all(f)] == ["HAADF"]


def test_velox_four_detectors(realfile):
    f = realfile("loaders/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd")
    assert io.load(f).title == "HAADF"
    df2 = io.load(f, signal="DF2")
    assert df2.title == "DF2" and df2.signals == ["HAADF", "DF2", "BF", "DF4"]
    assert io.load(f, signal=2).title == "BF"
    assert io.load(f, signal="3").title == "DF4"
    with pytest.raises(SignalSelectionError) as ei:
        io.load(f, signal="XYZ")
    msg = str(ei.value)
    for name in ("HAADF", "DF2", "BF", "DF4"):
        assert name in msg
    with pytest.raises(SignalSelectionError, match="out of range"):
        io.load(f, signal=7)
    all_ = io.load_all(f)
    assert [m.title for m in all_] == ["HAADF", "DF2", "BF", "DF4"]
    assert all(m.pixel_size_nm == pytest.approx((87.3708, 87.3708), rel=1e-5) for m in all_)


def test_pixel_size_override(realfile):
    mg = io.load(realfile("particles/JEOL HAADF Image.dm4"), pixel_size="2A")
    assert mg.pixel_size_nm == pytest.approx((0.2, 0.2))
    mg = io.load(realfile("particles/JEOL HAADF Image.dm4"), pixel_size=(0.1, 0.3))
    assert mg.pixel_size_nm == pytest.approx((0.1, 0.3))


def test_inspect_describes_stack_without_frame(realfile):
    d = io.inspect(realfile("particles/03_Scanning Preview.emi"))
    assert d["frames"] == 5 and d["shape"] == [128, 128] and d["dtype"] == "uint16"
    assert d["pixel_size_nm"] == pytest.approx([0.38435, 0.38435], rel=1e-4)
    assert d["mode"] == "STEM" and d["beam_energy_kv"] == 200.0 and d["format"] == "TIA"
    d = io.inspect(realfile("loaders/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd"), signal="bf")
    assert d["title"] == "BF" and d["signals"] == ["HAADF", "DF2", "BF", "DF4"]


def test_extensions_and_companions(tmp_path):
    exts = io.supported_extensions()
    for e in (".dm3", ".dm4", ".emd", ".ser", ".emi", ".mrc", ".hspy", ".hdf5", ".tif", ".tiff", ".png", ".jpg"):
        assert e in exts
    ser = tmp_path / "scan_1.ser"
    ser.write_bytes(b"x")
    assert not io.is_companion_file(ser)
    (tmp_path / "scan.emi").write_bytes(b"x")
    assert io.is_companion_file(ser)
    assert not io.is_companion_file(tmp_path / "scan.emi")
    assert io.is_supported("A.DM4") and not io.is_supported("a.xyz")


# ------------------------------------------------------------------ errors
def _one_line(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(FileReadError) as ei:
        io.load(tmp_path / "nope.dm3")
    assert "not found" in _one_line(ei, tmp_path / "nope.dm3")
    f = tmp_path / "data.xyz"
    f.write_text("1 2 3")
    with pytest.raises(UnsupportedFormatError) as ei:
        io.load(f)
    assert ".xyz" in _one_line(ei, f)


def test_zero_byte_and_text_as_dm(tmp_path):
    z = tmp_path / "empty.dm4"
    z.write_bytes(b"")
    with pytest.raises(FileReadError) as ei:
        io.load(z)
    assert "empty" in _one_line(ei, z)
    t = tmp_path / "notes.dm3"
    t.write_text("this is not a micrograph\nsecond line\n")
    with pytest.raises(FileReadError) as ei:
        io.load(t)
    assert "DigitalMicrograph" in _one_line(ei, t)


@pytest.mark.parametrize(
    "rel",
    [
        "particles/JEOL HAADF Image.dm4",
        "lattice/Acquisition_18.emd",
        "loaders/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd",
    ],
)
def test_truncated_files(realfile, tmp_path, rel):
    src = realfile(rel)
    f = tmp_path / ("cut" + src.suffix)
    with open(src, "rb") as fh:
        f.write_bytes(fh.read(1000))
    with pytest.raises(FileReadError) as ei:
        io.load(f)
    _one_line(ei, f)
    with pytest.raises(FileReadError):
        io.inspect(f)


def _save_hspy(path, data, cls="Signal2D"):
    import hyperspy.api as hs

    s = getattr(hs.signals, cls)(data)
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.units = 0.05, "nm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.save(path, overwrite=True)
    return path


def test_bad_shapes_in_hspy(tmp_path):
    one = _save_hspy(tmp_path / "profile.hspy", np.arange(100.0), "Signal1D")
    with pytest.raises(DataShapeError) as ei:
        io.load(one)
    assert "1-D" in _one_line(ei, one)
    four = _save_hspy(tmp_path / "4d.hspy", np.zeros((2, 3, 16, 16)))
    with pytest.raises(DataShapeError) as ei:
        io.load(four)
    assert "4-D" in _one_line(ei, four)
    nan = _save_hspy(tmp_path / "nan.hspy", np.full((32, 32), np.nan))
    with pytest.raises(InvalidDataError) as ei:
        io.load(nan)
    assert "NaN" in _one_line(ei, nan)
    with pytest.raises(InvalidDataError):
        io.inspect(nan)
    stack = _save_hspy(tmp_path / "stack.hspy", np.random.default_rng(0).random((4, 32, 32)))
    with pytest.raises(DataShapeError) as ei:
        io.load(stack)
    assert "frame" in _one_line(ei, stack)
    assert io.inspect(stack)["frames"] == 4
    assert io.load(stack, frame=-1).shape == (32, 32)


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize(
    "unit, factor", [("nm", 1.0), ("micron", 1e3), ("\\u00B5m", 1e3), ("A", 0.1), ("angstrom", 0.1), ("pm", 1e-3)]
)
def test_imagej_tiff_round_trip(tmp_path, unit, factor):
    import tifffile

    data = np.random.default_rng(1).random((48, 64)).astype(np.float32)
    px_in_unit = 0.25
    f = tmp_path / "ij.tif"
    tifffile.imwrite(f, data, imagej=True, resolution=(1 / px_in_unit, 1 / px_in_unit), metadata={"unit": unit})
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        mg = io.load(f)
    assert mg.pixel_size_nm == pytest.approx((px_in_unit * factor,) * 2, rel=1e-6)
    np.testing.assert_array_equal(mg.data, data)
    assert mg.file_format == "ImageJ TIFF"


def test_imagej_tiff_anisotropic(tmp_path):
    import tifffile

    f = tmp_path / "aniso.tif"
    tifffile.imwrite(f, np.ones((20, 30), np.uint16), imagej=True, resolution=(10.0, 5.0), metadata={"unit": "nm"})
    assert io.load(f).pixel_size_nm == pytest.approx((0.2, 0.1))


def test_plain_tiff_is_uncalibrated(tmp_path):
    import tifffile

    data = (np.arange(30 * 40).reshape(30, 40) % 251).astype(np.uint8)
    f = tmp_path / "plain.tiff"
    tifffile.imwrite(f, data)
    with pytest.warns(CalibrationWarning, match="uncalibrated"):
        mg = io.load(f)
    assert mg.pixel_size_nm is None
    np.testing.assert_array_equal(mg.data, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        assert io.load(f, pixel_size=0.5).pixel_size_nm == (0.5, 0.5)


def test_hspy_round_trip(tmp_path):
    data = np.random.default_rng(2).random((40, 50))
    f = _save_hspy(tmp_path / "img.hspy", data)
    mg = io.load(f)
    assert mg.pixel_size_nm == pytest.approx((0.05, 0.05))
    np.testing.assert_allclose(mg.data, data.astype(np.float32))
    # the same layout under .hdf5 needs reader='HSPY'
    g = tmp_path / "img.hdf5"
    shutil.copy(f, g)
    assert io.load(g).pixel_size_nm == pytest.approx((0.05, 0.05))


def test_png_grey_and_rgb(tmp_path):
    import imageio.v3 as iio

    grey = (np.arange(32 * 48).reshape(32, 48) % 200).astype(np.uint8)
    f = tmp_path / "grey.png"
    iio.imwrite(f, grey)
    with pytest.warns(CalibrationWarning):
        mg = io.load(f)
    assert mg.pixel_size_nm is None and mg.file_format == "PNG"
    np.testing.assert_array_equal(mg.data, grey)
    rgb = np.stack([grey, grey, grey], axis=-1)
    g = tmp_path / "rgb.png"
    iio.imwrite(g, rgb)
    with pytest.warns(CalibrationWarning):
        mg = io.load(g)
    assert mg.shape == (32, 48)
    np.testing.assert_allclose(mg.data, grey, atol=0.01)


def test_errors_are_latticefit_errors(tmp_path):
    f = tmp_path / "garbage.emd"
    f.write_bytes(b"\x00" * 5000)
    with pytest.raises(LatticefitError) as ei:
        io.load(f)
    _one_line(ei, f)


def test_import_latticefit_does_not_import_hyperspy():
    import subprocess
    import sys

    code = "import sys, latticefit, latticefit.io; print('hyperspy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_formats_doc_lists_every_extension():
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "formats.md"
    text = doc.read_text(encoding="utf-8")
    for ext in io.SUPPORTED_EXTENSIONS:
        assert f"`{ext}`" in text, ext
