"""The analysis computed in a second process: used only for exactly the inputs it read,
never left running, and a failing child only means computing here."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from daydreaming_dagster import analysis, reporting
from daydreaming_dagster.analysis import _api, _prefetch
from daydreaming_dagster.results import figure_cache

from ..results.conftest import COHORT, Store, build_store

N_BOOT = 40


@pytest.fixture
def store(data_root: Path) -> Store:
    return build_store(data_root)


@pytest.fixture
def local_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts analyses computed in this process (the child process is not patched)."""
    calls: list[int] = []
    real = _api.analyze_scores

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_api, "analyze_scores", counting)
    monkeypatch.setattr(_prefetch, "prefetch_enabled", lambda: True)  # also on a 1-CPU machine
    analysis.forget_recent_analyses()
    return calls


def _pending_child(store: Store) -> _prefetch._Pending:
    return _prefetch._PENDING[_prefetch._request(store.root, COHORT, 0, N_BOOT)]


def test_the_childs_analysis_is_used_and_equals_computing_here(store: Store, local_calls: list[int]) -> None:
    assert reporting.start_report_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    child = _pending_child(store)
    key, prefetched = _api.analyze_cohort_keyed(store.root, COHORT, n_boot=N_BOOT)
    assert local_calls == []  # nothing computed here
    assert _prefetch._PENDING == {} and _prefetch._DRAWING == {key: child}  # now drawing the figures
    _prefetch.collect_figures(key)
    assert child.process.returncode == 0 and not child.workdir.exists()
    assert _prefetch._DRAWING == {}

    analysis.forget_recent_analyses()
    computed = analysis.analyze_cohort(store.root, COHORT, n_boot=N_BOOT)
    assert local_calls == [1]
    assert prefetched.to_json() == computed.to_json()
    for name, frame in computed.tables().items():
        assert prefetched.tables()[name].equals(frame), name


def test_a_child_that_read_other_inputs_is_ignored(store: Store, local_calls: list[int]) -> None:
    assert analysis.start_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    _pending_child(store).process.wait(timeout=300)  # it analysed the text below before the change
    text = store.layer.read_parsed("essay", store.e_a)
    store.layer.write_parsed("essay", store.e_a, text + " A changed ending.")
    found = analysis.analyze_cohort(store.root, COHORT, n_boot=N_BOOT)
    assert local_calls == [1]  # computed here, over the changed text
    analysis.forget_recent_analyses()
    _, again = _api.analyze_cohort_keyed(store.root, COHORT, n_boot=N_BOOT, use_prefetch=False)
    assert again.to_json() == found.to_json()
    assert local_calls == [1, 1]


def test_a_failing_child_means_computing_here(data_root: Path, local_calls: list[int]) -> None:
    store = build_store(data_root)
    assert analysis.start_prefetch(store.root, "no-such-cohort", seed=0, n_boot=N_BOOT)
    child = _prefetch._PENDING[_prefetch._request(store.root, "no-such-cohort", 0, N_BOOT)]
    child.process.wait(timeout=300)
    assert child.process.returncode != 0
    assert "no-such-cohort" in (child.workdir / "stderr.txt").read_text(encoding="utf-8")
    # A child for another request is not taken by this one; then a failed child is ignored.
    found = analysis.analyze_cohort(store.root, COHORT, n_boot=N_BOOT)
    assert local_calls == [1] and found.n_scores > 0
    assert _prefetch.take_prefetched(store.root, "no-such-cohort", seed=0, n_boot=N_BOOT, key="any") is None
    assert not child.workdir.exists()


def test_an_untaken_child_is_stopped_and_its_files_removed(store: Store, local_calls: list[int]) -> None:
    assert analysis.start_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    assert analysis.start_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)  # one child per request
    assert len(_prefetch._PENDING) == 1
    child = _pending_child(store)
    analysis.discard_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    assert child.process.returncode is not None and not child.workdir.exists()
    assert _prefetch._PENDING == {}


def test_switched_off_by_the_environment(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_prefetch.ENV_SWITCH, "0")
    assert not _prefetch.prefetch_enabled()
    assert not analysis.start_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    assert _prefetch._PENDING == {}


def test_a_warm_child_waits_for_go_and_then_analyses(store: Store, local_calls: list[int]) -> None:
    assert analysis.warm_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    child = _pending_child(store)
    with pytest.raises(subprocess.TimeoutExpired):
        child.process.wait(timeout=0.5)  # waiting for go, not reading inputs
    assert not (child.workdir / _prefetch.RESULT_FILENAME).exists()
    assert analysis.start_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    assert _pending_child(store) is child  # the warm child, not a new one
    analysis.analyze_cohort(store.root, COHORT, n_boot=N_BOOT)
    assert local_calls == []
    analysis.discard_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)  # figures not wanted
    assert child.process.returncode is not None and not child.workdir.exists()
    assert _prefetch._DRAWING == {}


def test_a_warm_child_never_told_to_go_is_not_used(store: Store, local_calls: list[int]) -> None:
    assert analysis.warm_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    child = _pending_child(store)
    analysis.analyze_cohort(store.root, COHORT, n_boot=N_BOOT)  # its inputs were never declared final
    assert local_calls == [1]
    assert child.process.returncode is not None and not child.workdir.exists()


@pytest.fixture
def local_drawings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts figures drawn in this process (the child process is not patched)."""
    from daydreaming_dagster.reporting import analysis_plots, report
    from daydreaming_dagster.results import plots

    drawn: list[str] = []

    def counting(name: str, real: Any) -> Any:
        def draw(*args: Any, **kwargs: Any) -> Any:
            drawn.append(name)
            return real(*args, **kwargs)
        return draw

    for name in ("forest_plot", "agreement_heatmap", "variance_bars"):
        monkeypatch.setattr(analysis_plots, name, counting(name, getattr(analysis_plots, name)))
    monkeypatch.setattr(plots, "render_score_distributions", counting("scores", plots.render_score_distributions))
    monkeypatch.setattr(report, "render_score_distributions", counting("scores", report.render_score_distributions))
    figure_cache.forget_figures()
    return drawn


def test_the_childs_figures_are_the_report_figures(store: Store, local_calls: list[int],
                                                    local_drawings: list[str]) -> None:
    from daydreaming_dagster.reporting import write_cohort_report

    reporting.start_report_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    analysis.analyze_cohort(store.root, COHORT, n_boot=N_BOOT)
    reports = store.root / "cohorts" / COHORT / "reports"
    write_cohort_report(store.root, COHORT, n_boot=N_BOOT)
    assert local_calls == [] and local_drawings == []  # analysis and all four figures from the child
    from_child = {path.name: path.read_bytes() for path in reports.glob("*.png")}
    assert len(from_child) == 4

    figure_cache.forget_figures()
    write_cohort_report(store.root, COHORT, n_boot=N_BOOT)  # the same analysis, figures drawn here
    assert sorted(local_drawings) == ["agreement_heatmap", "forest_plot", "scores", "variance_bars"]
    assert {path.name: path.read_bytes() for path in reports.glob("*.png")} == from_child


def test_figures_of_other_inputs_are_drawn_afresh(store: Store, local_calls: list[int],
                                                 local_drawings: list[str]) -> None:
    from daydreaming_dagster.reporting import write_cohort_report

    reporting.start_report_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    analysis.analyze_cohort(store.root, COHORT, n_boot=N_BOOT)
    write_cohort_report(store.root, COHORT, n_boot=N_BOOT, seed=3)  # another analysis: its plots are new
    assert local_calls == [1]
    # The child's figures belong to the seed-0 analysis: none is collected, all are drawn here.
    assert sorted(local_drawings) == ["agreement_heatmap", "forest_plot", "scores", "variance_bars"]
    assert len(_prefetch._DRAWING) == 1
    analysis.discard_prefetch(store.root, COHORT, seed=0, n_boot=N_BOOT)
    assert _prefetch._DRAWING == {}


def test_a_run_analyses_in_the_child_and_leaves_nothing_behind(
    demo_root: Path, local_calls: list[int], local_drawings: list[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    from daydreaming_dagster import app

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the children's work directories
    outcome = app.run(str(demo_root), "demo", offline=True)
    assert outcome.report_state == "built" and not outcome.failed
    assert local_calls == [] and local_drawings == []  # the results run took the child's analysis and figures
    assert _prefetch._PENDING == {}
    assert not list(tmp_path.glob("daydream-analysis-*"))
    essays = (demo_root / "results" / "demo" / "analysis" / "essays.csv").read_text(encoding="utf-8")
    assert essays.count("\n") == 1 + 16  # header and the 16 essays


def test_a_run_with_nothing_to_do_starts_no_child(demo_root: Path, local_calls: list[int],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from daydreaming_dagster import app

    app.run(str(demo_root), "demo", offline=True)
    spawned: list[object] = []
    monkeypatch.setattr(_prefetch, "_spawn", lambda request: spawned.append(request))
    outcome = app.run(str(demo_root), "demo", offline=True)
    assert outcome.report_state == "current" and spawned == []
