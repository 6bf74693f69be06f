"""Render the README figures from sample_data/ (run from the repository root).

    python docs/img/make_readme_figures.py

Writes docs/img/report_sample.png (latticefit report) and docs/img/sizes_sample.png
(latticefit sizes) at screen resolution, palette-compressed to stay well under 600 KB.
The publication versions (vector PDF/SVG + 300-dpi PNG) come from the commands themselves.
"""

import warnings
from pathlib import Path

from PIL import Image

from latticefit import io
from latticefit.report import lattice_report
from latticefit.sizes_figure import size_figure

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_data"
OUT = ROOT / "docs" / "img"


def _save_small(fig, path, dpi=130):
    fig.savefig(path, dpi=dpi)
    im = Image.open(path).convert("RGB")
    # 256-colour palette without dithering: the Okabe-Ito colours survive, the file shrinks ~5x
    im.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    rep = lattice_report(io.load(SAMPLES / "perovskite_111_hrtem.tif"), io.load(SAMPLES / "perovskite_111_haadf.hspy"),
                         phases=["MAPbBr3", "PbS"])
    _save_small(rep.figure, OUT / "report_sample.png")
    sizes = size_figure([io.load(SAMPLES / "pbs_dots_4nm_haadf.tif"), io.load(SAMPLES / "pbs_dots_7nm_haadf.hspy")],
                        diameter_range_nm=(2, 12))
    _save_small(sizes.figure, OUT / "sizes_sample.png")
