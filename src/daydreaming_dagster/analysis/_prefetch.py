"""Analyse a cohort in a second process while this one does other work.

A results build spends about a second importing scikit-learn (which imports SciPy's stats and
pandas) and another half second resampling, one after the other on one core, while the
machine's other core waits. So a run with work starts a child process early
(:func:`warm_prefetch`): it imports what the analysis needs while the stages run here, then
waits. When the scores are final, :func:`start_prefetch` tells it to go; the analysis step
takes its result (:func:`take_prefetched`) instead of computing its own, and the report reuses
it as usual. When asked (``figures``), the child then draws the report's figures (about 1.5 s
with Matplotlib's import) while the results run writes its tables; the report collects them
(:func:`collect_figures`) by the content key of what they were drawn from
(:mod:`~daydreaming_dagster.results.figure_cache`). The analysis sits below the report, so it
never imports the drawing code: the report names its drawing function
(:func:`daydreaming_dagster.reporting.warm_report_prefetch`) and only the child imports it.

The result cannot differ from computing in-process: the child returns the content key of every
input it read (scores, texts, target, settings; see ``_analysis_key``) with its result, and the
parent uses the result only when the key it computes itself is the same. Any failure of the
child (import error, crash, missing file) only means the parent computes as before.

It is used only where several CPUs are available and ``DAYDREAMING_ANALYSIS_PREFETCH`` is not
``0``. Only :mod:`daydreaming_dagster.app` (``run``, ``refresh_results``) starts children;
analysing a cohort anywhere else computes in-process as before.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..results.figure_cache import remember

if TYPE_CHECKING:
    from ._model import Analysis

ENV_SWITCH = "DAYDREAMING_ANALYSIS_PREFETCH"
CHILD_MODULE = "daydreaming_dagster.analysis._prefetch_child"
"""The child's entry point (a module of its own: running this one as ``__main__`` would load
it twice, once as the package's module)."""
RESULT_FILENAME = "analysis.pickle"
FIGURES_FILENAME = "figures.pickle"
NO_FIGURES = "-"
"""The child's figures argument when it draws nothing."""
WAIT_LIMIT_S = 3600.0
"""Longest wait for a child's result; the child does what the parent would, so waiting is
never slower than computing unless the child is stuck."""


@dataclass
class _Pending:
    request: tuple[str, str, int, int]
    process: subprocess.Popen[bytes]
    workdir: Path
    draws_figures: bool = False
    """Whether the child draws figures after its analysis (see ``figures`` of :func:`warm_prefetch`)."""
    going: bool = False
    """Whether the child was told to go (it reads its inputs only then)."""


_PENDING: dict[tuple[str, str, int, int], _Pending] = {}
"""Children by request, until their analysis is taken."""
_DRAWING: dict[str, _Pending] = {}
"""Children whose analysis was taken, by its key, until their figures are collected."""
_LOCK = threading.Lock()
GO = b"go\n"
_POLL_S = 0.01
_EXIT_GRACE_S = 5.0


def _request(data_root: str | os.PathLike[str], cohort_id: str, seed: int, n_boot: int) -> tuple[str, str, int, int]:
    root = str(data_root)
    if "://" not in root:  # a local root, absolute for the child; a URL (s3://…) stays as it is
        root = str(Path(root).resolve())
    return (root, cohort_id, int(seed), int(n_boot))


def prefetch_enabled() -> bool:
    """Whether children are started: more than one usable CPU (else the child would only
    compete with this process) and ``DAYDREAMING_ANALYSIS_PREFETCH`` not ``0``."""
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus >= 2


def _spawn(request: tuple[str, str, int, int], figures: str | None) -> _Pending:
    workdir = Path(tempfile.mkdtemp(prefix="daydream-analysis-"))
    root, cohort_id, seed, n_boot = request
    argv = [sys.executable, "-m", CHILD_MODULE, root, cohort_id, str(seed), str(n_boot), str(workdir),
            figures or NO_FIGURES]
    with open(workdir / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr)
    return _Pending(request, process, workdir, draws_figures=figures is not None)


def warm_prefetch(data_root: str | os.PathLike[str], cohort_id: str, *, seed: int, n_boot: int,
                  figures: str | None = None) -> bool:
    """Start a child that imports the analysis now and analyses ``cohort_id`` (as
    :func:`analyze_cohort` with these settings would) once :func:`start_prefetch` says go;
    returns whether one is waiting.

    ``figures``, ``"package.module:function"``, names a function the child imports and calls
    after its analysis as ``function(data_root, cohort_id, analysis_key, analysis)``; the
    ``{figure-cache key: PNG bytes}`` it returns is what :func:`collect_figures` keeps. A name,
    not a function, because the child imports it (the report's drawing code sits above the
    analysis, which never imports it)."""
    if not prefetch_enabled():
        return False
    request = _request(data_root, cohort_id, seed, n_boot)
    with _LOCK:
        if request not in _PENDING:
            _PENDING[request] = _spawn(request, figures)
    return True


def start_prefetch(data_root: str | os.PathLike[str], cohort_id: str, *, seed: int, n_boot: int,
                   figures: str | None = None) -> bool:
    """The inputs are final: tell the waiting child to analyse them (starting one if none is
    waiting, drawing ``figures`` as in :func:`warm_prefetch`); returns whether a child is
    analysing."""
    if not prefetch_enabled():
        return False
    request = _request(data_root, cohort_id, seed, n_boot)
    with _LOCK:
        pending = _PENDING.get(request)
        if pending is not None and pending.going:
            return True
        if pending is None or not _tell_go(pending):
            if pending is not None:
                _stop(pending)
            pending = _spawn(request, figures)
            if not _tell_go(pending):
                _stop(pending)
                _PENDING.pop(request, None)
                return False
        _PENDING[request] = pending
    return True


def _tell_go(pending: _Pending) -> bool:
    stdin = pending.process.stdin
    if stdin is None or pending.process.poll() is not None:
        return False
    try:
        stdin.write(GO)
        stdin.close()
    except OSError:  # the child is gone
        return False
    pending.going = True
    return True


def take_prefetched(data_root: str | os.PathLike[str], cohort_id: str, *, seed: int, n_boot: int,
                    key: str) -> Analysis | None:
    """The child's analysis of this request when one was started and read exactly the inputs
    whose content key is ``key``; else ``None`` (the caller computes). Waits for the child."""
    with _LOCK:
        pending = _PENDING.pop(_request(data_root, cohort_id, seed, n_boot), None)
    if pending is None:
        return None
    if not pending.going:  # never told which inputs are final: its result would be unknown
        _stop(pending)
        return None
    handed_over = False
    try:
        result = _wait_for(pending, pending.workdir / RESULT_FILENAME)
        if result is None:
            return None
        child_key, analysis = pickle.loads(result.read_bytes())  # noqa: S301 - our own child's file
        if child_key != key:
            return None
        if not pending.draws_figures:
            return analysis  # the child is done (stopped below)
        with _LOCK:  # its figures follow; the report collects them (collect_figures)
            previous = _DRAWING.pop(key, None)
            _DRAWING[key] = pending
        if previous is not None:
            _stop(previous)
        handed_over = True
        return analysis
    finally:
        if not handed_over:
            _stop(pending)


def collect_figures(key: str) -> None:
    """Wait for the figures the child that analysed ``key`` is drawing and keep them in
    :mod:`~daydreaming_dagster.results.figure_cache`, where the report finds them by the content
    they were drawn from (nothing when no such child exists or it failed)."""
    with _LOCK:
        pending = _DRAWING.pop(key, None)
    if pending is None:
        return
    try:
        figures = _wait_for(pending, pending.workdir / FIGURES_FILENAME)
        if figures is not None:
            for figure_key, png in pickle.loads(figures.read_bytes()).items():  # noqa: S301 - our child's file
                remember(figure_key, png)
            with contextlib.suppress(subprocess.TimeoutExpired):
                pending.process.wait(timeout=_EXIT_GRACE_S)  # its last act was writing that file
    finally:
        _stop(pending)


def _wait_for(pending: _Pending, result: Path) -> Path | None:
    """``result`` once the child has written it, or ``None`` when the child ended (or was
    stuck past :data:`WAIT_LIMIT_S`) without writing it."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not result.is_file():
        if pending.process.poll() is not None:
            return result if result.is_file() else None
        if time.monotonic() > deadline:
            return None
        time.sleep(_POLL_S)
    return result


def discard_prefetch(data_root: str | os.PathLike[str], cohort_id: str, *, seed: int, n_boot: int) -> None:
    """Stop the child of this request if nobody took its result or figures (e.g. the results
    run failed before its analysis step) and remove its files."""
    request = _request(data_root, cohort_id, seed, n_boot)
    with _LOCK:
        leftovers = [pending for pending in (_PENDING.pop(request, None),) if pending is not None]
        for key in [key for key, pending in _DRAWING.items() if pending.request == request]:
            leftovers.append(_DRAWING.pop(key))
    for pending in leftovers:
        _stop(pending)


@atexit.register
def cancel_prefetches() -> None:
    """Stop every child whose result or figures nobody took and remove their files."""
    with _LOCK:
        pending = [*_PENDING.values(), *_DRAWING.values()]
        _PENDING.clear()
        _DRAWING.clear()
    for item in pending:
        _stop(item)


def _stop(pending: _Pending) -> None:
    if pending.process.stdin is not None and not pending.process.stdin.closed:
        with contextlib.suppress(OSError):
            pending.process.stdin.close()
    if pending.process.poll() is None:
        pending.process.kill()
    pending.process.wait()
    shutil.rmtree(pending.workdir, ignore_errors=True)
