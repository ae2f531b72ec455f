"""The analysis child process of :mod:`._prefetch`: import, wait for go, analyse, draw.

Run as ``python -m daydreaming_dagster.analysis._prefetch_child ROOT COHORT SEED N_BOOT WORKDIR
FIGURES`` by :func:`~daydreaming_dagster.analysis._prefetch.warm_prefetch`; it writes its results
into WORKDIR, where the parent reads them. FIGURES is ``module:function`` (the report's drawing
function, imported by name so the analysis never imports the report) or ``-`` for none.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._prefetch import FIGURES_FILENAME, GO, NO_FIGURES, RESULT_FILENAME


def _drawing_function(name: str) -> Callable[..., dict[str, bytes | None]] | None:
    """The function ``module:function`` names (``None`` for :data:`NO_FIGURES`)."""
    if name == NO_FIGURES:
        return None
    module, _, function = name.partition(":")
    drawn: Any = getattr(importlib.import_module(module), function)
    return drawn


def _main(argv: list[str]) -> int:
    root, cohort_id, seed, n_boot, workdir, figures_name = argv
    # The slow imports first, while the parent is still producing the inputs.
    import sklearn.feature_extraction.text  # noqa: F401 - the TF-IDF vectoriser's import

    from ._api import analyze_cohort_keyed

    prerender_figures = _drawing_function(figures_name)
    if prerender_figures is not None:  # the report draws with Matplotlib, imported lazily there
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401

    if sys.stdin.buffer.readline() != GO:
        return 0  # the parent went away or needs no analysis
    key, analysis = analyze_cohort_keyed(root, cohort_id, seed=int(seed), n_boot=int(n_boot), use_prefetch=False)
    _write_result(Path(workdir) / RESULT_FILENAME, (key, analysis))  # the analysis step waits for this
    if prerender_figures is None:
        return 0
    try:
        figures = prerender_figures(root, cohort_id, key, analysis)
    except Exception as exc:  # noqa: BLE001 - the parent draws whatever is missing itself
        print(f"figures not prerendered: {exc!r}", file=sys.stderr)
        return 1
    _write_result(Path(workdir) / FIGURES_FILENAME, figures)  # the report step, later, for this
    return 0


def _write_result(target: Path, value: object) -> None:
    partial = target.with_suffix(".partial")
    partial.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    partial.replace(target)  # the parent reads a complete file or none


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
