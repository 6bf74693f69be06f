"""Publication figures: the Fig. 4 lattice report and the Fig. 5 size figure."""

from __future__ import annotations

from ._dots import *  # noqa: F403
from ._dots_figure import *  # noqa: F403
from ._lattice_report import *  # noqa: F403
from ._lattice_report import summary_lines as lattice_report_lines
from ._sizes import *  # noqa: F403
from ._sizes import summary_lines as size_figure_lines

del summary_lines  # noqa: F821 - two meanings: use lattice_report_lines / size_figure_lines

__all__ = [
    "DOT_COLUMNS",
    "DotStatistics",
    "measure_dots",
    "plot_dot_statistics",
    "population_verdict",
    "FieldOfViewCheck",
    "LatticeReport",
    "RegionChoice",
    "SizeFigure",
    "SizePopulation",
    "anomaly_map",
    "build_lattice_report",
    "build_size_figure",
    "check_fields_of_view",
    "choose_dot_from_anomaly",
    "choose_dot_from_particles",
    "choose_matrix_region",
    "comparison_rows",
    "format_mean_sd",
    "format_rsd",
    "fringe_phase",
    "fringe_segments",
    "haadf_to_hrtem_points",
    "histogram_errors",
    "hkl_label",
    "lattice_report",
    "plain_text",
    "plot_lattice_report",
    "plot_size_figure",
    "size_figure",
    "split_population",
    "lattice_report_lines",
    "size_figure_lines",
]
