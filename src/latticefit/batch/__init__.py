"""Resumable batch analysis of folders of microscope files."""

from __future__ import annotations

from ._analyses import *  # noqa: F403
from ._auto import *  # noqa: F403
from ._exec import *  # noqa: F403
from ._html import *  # noqa: F403
from ._run import *  # noqa: F403
from ._store import *  # noqa: F403
from ._task import *  # noqa: F403

__all__ = [
    "ANALYSES",
    "AnalysisOutcome",
    "Analyzer",
    "FIGURE_DPI",
    "FIGURE_SIZE_IN",
    "FileTask",
    "FoundFile",
    "MIN_PARTICLE_DIAMETER_NM",
    "MODES",
    "PAGE_COLUMNS",
    "PERIODICITY_THRESHOLD",
    "RECORD_VERSION",
    "RecordStore",
    "SUMMARY_LEAD_COLUMNS",
    "SUMMARY_TAIL_COLUMNS",
    "TIMING_COLUMNS",
    "analyze_lattice",
    "analyze_particles",
    "atomic_write_bytes",
    "batch_settings",
    "build_tables",
    "choose_analyses",
    "choose_analysis",
    "content_files",
    "crashed_record",
    "default_analyzers",
    "default_jobs",
    "discover_files",
    "error_message",
    "failed_files",
    "file_content_hash",
    "format_number",
    "index_html",
    "iter_signals",
    "lattice_summary",
    "output_stem",
    "particle_summary",
    "periodicity_score",
    "plan_analyses",
    "process_file",
    "run",
    "run_dask",
    "run_process_pool",
    "run_serial",
    "settings_digest",
    "signal_tags",
    "too_small_for_particles",
    "write_index_html",
    "write_tables",
]
