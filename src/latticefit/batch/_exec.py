"""Where the per-file tasks of a batch run: in this process, a process pool, or a dask cluster.

Every executor yields ``(task, record)`` pairs as the files finish, in
completion order, and never raises for one file: a worker that dies (a
reader that crashes the interpreter, the kernel's out-of-memory killer)
becomes an ``error`` record for the file it was processing.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool

from ..errors import LatticefitError
from ._store import RECORD_VERSION
from ._task import FileTask, error_message

__all__ = ["default_jobs", "run_serial", "run_process_pool", "run_dask", "crashed_record"]

#: environment variables that cap the threads of BLAS/OpenMP/numba in each worker
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def default_jobs() -> int:
    """Number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def crashed_record(task: FileTask, message: str) -> dict:
    """The record of a file whose worker died or whose task raised."""
    return {
        "record_version": RECORD_VERSION,
        "file": task.relpath,
        "content_hash": None,
        "settings_hash": task.settings_hash,
        "status": "error",
        "rows": [{"signal": "", "analysis": "", "status": "error", "error": message}],
        "spots": [],
        "particles": [],
        "time_s": None,
        "load_s": None,
        "retry_on_resume": True,
        "_outputs": {},
    }


@contextlib.contextmanager
def one_numba_thread():
    """Numba's parallel loops on one thread inside the block (this process runs one file at a time)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def run_serial(fn: Callable, tasks: Iterable[FileTask]) -> Iterator[tuple[FileTask, dict]]:
    """Run the tasks one after the other in this process (numba on one thread: --jobs is the cores used)."""
    for task in tasks:
        with one_numba_thread():
            try:
                rec = fn(task)
            except Exception as e:  # noqa: BLE001 - process_file does not raise; an injected fn might
                rec = crashed_record(task, f"task failed: {error_message(e)}")
        yield task, rec


@contextlib.contextmanager
def single_threaded_workers():
    """Make worker processes started inside the block use one BLAS/OpenMP/numba thread each."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    for k in _THREAD_VARS:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """End this worker process as soon as the batch process ``parent_pid`` is gone (e.g. SIGKILLed).

    A pool worker otherwise outlives a killed batch, blocked on its task queue and holding its memory
    (with the ``forkserver`` start method its direct parent is the fork server, which survives too).
    A daemon thread polls whether the batch process still exists and exits the worker when it does not.
    """
    import threading

    def watch():
        while True:
            time.sleep(poll_s)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # a pid reused by another user's process: ours is gone
                os._exit(0)

    threading.Thread(target=watch, name="latticefit-parent-watch", daemon=True).start()


def _worker_init(parent_pid: int | None = None):
    import logging
    import warnings

    if parent_pid is not None:
        _exit_with_parent(parent_pid)

    import matplotlib

    matplotlib.use("Agg", force=True)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("hyperspy", "rsciio", "rosettasciio", "numba", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _ping() -> int:
    return os.getpid()


def _workers_can_start(pool_factory) -> bool:
    """Whether a fresh pool runs a no-op (False e.g. when a script lacks the ``__main__`` guard)."""
    pool = pool_factory()
    try:
        pool.submit(_ping).result(timeout=120)
        return True
    except Exception:  # noqa: BLE001 - BrokenProcessPool, timeout
        return False
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


_START_FAILURE = (
    "worker processes could not start; a script that calls latticefit.batch.run with jobs > 1 "
    "must guard its top level with `if __name__ == '__main__':` (or use jobs=1)"
)


#: modules the fork server imports once, so that each worker starts without importing them again
_PRELOAD = [
    "numpy",
    "scipy.ndimage",
    "pandas",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "latticefit.batch._task",
    "latticefit.io",
]


def _context(name: str | None):
    """``forkserver`` where available (workers fork from a clean, single-threaded server that has
    imported :data:`_PRELOAD`, never from this possibly multi-threaded process), else ``spawn``.
    """
    if name is None:
        name = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(name)
    if name == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def run_process_pool(
    fn: Callable, tasks: Iterable[FileTask], jobs: int, *, context: str | None = None
) -> Iterator[tuple[FileTask, dict]]:
    """Run the tasks on ``jobs`` worker processes, at most 2 x jobs in flight.

    Workers start with the ``forkserver`` method where the platform has it,
    else ``spawn`` (never plain ``fork``: numba's and BLAS's threads do not
    survive it). When a worker dies, every file in flight is retried alone in
    a fresh pool; the file that kills a worker on its own gets an error record.
    """
    ctx = _context(context)
    pending = deque(tasks)
    suspects: deque[FileTask] = deque()
    limit = max(1, 2 * jobs)

    def new_pool():
        with single_threaded_workers():
            return cf.ProcessPoolExecutor(
                max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
            )

    pool = new_pool()
    inflight: dict[cf.Future, tuple[FileTask, bool]] = {}
    finished = False
    n_completed = 0
    try:
        while pending or suspects or inflight:
            if suspects and not inflight:
                t = suspects.popleft()
                inflight[pool.submit(fn, t)] = (t, True)  # alone: if the pool breaks now, t broke it
            elif not suspects:
                while pending and len(inflight) < limit:
                    t = pending.popleft()
                    inflight[pool.submit(fn, t)] = (t, False)
            done, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
            broken = False
            for fut in done:
                t, alone = inflight.pop(fut)
                try:
                    rec = fut.result()
                except BrokenProcessPool:
                    broken = True
                    if alone and n_completed == 0 and not _workers_can_start(new_pool):
                        raise LatticefitError(_START_FAILURE) from None
                    if alone:
                        yield (
                            t,
                            crashed_record(
                                t, "the worker process died while processing this file (crash or out of memory)"
                            ),
                        )
                        # culprit found: the other suspects only shared its pool, back to normal running
                        pending.extendleft(reversed(suspects))
                        suspects.clear()
                    else:
                        suspects.append(t)
                except Exception as e:  # noqa: BLE001 - e.g. a result that does not unpickle
                    yield t, crashed_record(t, f"task failed: {error_message(e)}")
                else:
                    n_completed += 1
                    yield t, rec
            if broken:
                # every other future of a broken pool fails too: retry those files alone
                for fut, (t, alone) in list(inflight.items()):
                    suspects.append(t)
                inflight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
        finished = True
    finally:
        # interrupted (Ctrl-C, the consumer stopped): do not wait for the files in flight
        pool.shutdown(wait=finished, cancel_futures=True)


def _dask_client(scheduler, jobs: int):
    """A ``dask.distributed.Client`` for ``scheduler`` (an address, ``'local'`` or a Client) and whether we own it."""
    try:
        import distributed
    except ImportError:
        raise LatticefitError("--scheduler needs dask.distributed: pip install 'latticefit[dask]'") from None
    if isinstance(scheduler, distributed.Client):
        return scheduler, None
    if str(scheduler) == "local":
        saved = dict(os.environ)
        try:
            with single_threaded_workers():
                cluster = distributed.LocalCluster(
                    n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None
                )
        finally:
            # distributed sets OMP_NUM_THREADS, PYTHONHASHSEED ... in this process's environment: undo it
            os.environ.clear()
            os.environ.update(saved)
        return distributed.Client(cluster), cluster
    try:
        client = distributed.Client(str(scheduler), timeout="10s")
    except (OSError, TimeoutError) as e:
        raise LatticefitError(f"cannot connect to the dask scheduler {scheduler}: {' '.join(str(e).split())}") from None
    except ValueError as e:
        raise LatticefitError(f"bad dask scheduler address {scheduler!r}: {' '.join(str(e).split())}") from None
    return client, None


def run_dask(fn: Callable, tasks: Iterable[FileTask], scheduler, jobs: int) -> Iterator[tuple[FileTask, dict]]:
    """Run the tasks on a dask.distributed cluster.

    Parameters
    ----------
    scheduler : str or distributed.Client
        ``'tcp://host:8786'``, ``'local'`` (a LocalCluster of ``jobs`` single-threaded
        worker processes) or an existing Client.
    """
    client, cluster = _dask_client(scheduler, jobs)
    own_client = client is not scheduler
    try:
        from distributed import as_completed

        tasks = list(tasks)
        futures = {}
        for i, t in enumerate(tasks):
            fut = client.submit(fn, t, pure=False, key=f"latticefit-{t.settings_hash[:8]}-{i}-{t.relpath}")
            futures[fut] = t
        for fut in as_completed(list(futures)):
            t = futures.pop(fut)
            try:
                rec = fut.result()
            except Exception as e:  # noqa: BLE001 - KilledWorker, a worker's exception...
                rec = crashed_record(t, f"dask task failed: {error_message(e)}")
            fut.release()
            yield t, rec
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
