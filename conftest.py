"""Root pytest configuration: what the doctest collection of ``src/`` must skip."""

# one-release aliases of moved modules: importing them warns and replaces the module in sys.modules
collect_ignore = [
    "src/latticefit/calibration.py",
    "src/latticefit/indexing.py",
    "src/latticefit/scattering.py",
    "src/latticefit/sizes_figure.py",
    "src/latticefit/sizestats.py",
]
