"""Root pytest configuration: what the doctest collection of ``src/`` must skip, and the order xdist hands items out."""

# one-release aliases of moved modules: importing them warns and replaces the module in sys.modules
collect_ignore = [
    "src/latticefit/calibration.py",
    "src/latticefit/indexing.py",
    "src/latticefit/scattering.py",
    "src/latticefit/sizes_figure.py",
    "src/latticefit/sizestats.py",
]


def pytest_collection_modifyitems(config, items):
    """The longest items run first: the notebooks, then the tests marked ``slow`` (function-scoped only).

    xdist hands the items out in this order, so the short tests fill the end of the run and the two
    workers finish together instead of one of them running a 30 s notebook alone at the end. The order
    within each group is the collection order (a stable sort), the same on every worker.
    """

    def rank(item) -> int:
        if str(getattr(item, "path", "")).endswith(".ipynb"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)
