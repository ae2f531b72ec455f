"""docs/python_api.md is a notebook session that must keep working: run its python blocks in
order, in a scratch copy of the shipped catalogs, against the real mock server."""

from __future__ import annotations

import contextlib
import io
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.support.demo import copy_demo

DOC = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.slow
def test_python_api_doc_session_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every block, then check that what each one prints is what it claims to compute,
    recomputed here independently of the doc's code."""
    blocks = _python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    copy_demo(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAYDREAMING_LLM_BASE_URL", raising=False)
    namespace: dict[str, Any] = {}
    printed: list[str] = []
    try:
        for index, block in enumerate(blocks):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(block, f"{DOC.name} block {index + 1}", "exec"), namespace)  # noqa: S102 - the doc is ours
            printed.append(out.getvalue())
    finally:
        server = namespace.get("server")
        if server is not None:
            server.stop()
    ns = namespace

    # 1. The plan: 2 combinations x 2 draft templates, one essay each, two evaluators each.
    plan = ns["plan"]
    assert [plan.stages[s].to_call for s in ("draft", "essay", "evaluation")] == [4, 4, 8]
    assert printed[0].startswith(plan.render())
    estimate = sum(line.cost_usd or 0 for line in ns["app"].plan_cost(ns["root"], plan))
    assert estimate > 0 and printed[0].endswith(f"{estimate} USD estimated\n")

    # 2. The run: every planned call reached the mock server once.
    outcome = ns["outcome"]
    assert outcome.report_state == "built" and not outcome.failed
    assert printed[1] == (f"built {outcome.report_path} {len(outcome.run_ids)} Dagster runs\n"
                          f"{4 + 4 + 8} model calls\n")
    assert printed[2] == "current []\n"

    # 3. The scores, and the mean per draft template (each group's own mean, not the overall one).
    scores = ns["scores"]
    assert scores.height == 8 and scores["score"].null_count() == 0
    rows = scores.select("draft_template", "score").rows()
    expected = {t: statistics.fmean(v for k, v in rows if k == t) for t in sorted({k for k, _ in rows})}
    by_template = ns["by_template"]
    assert {t: (m, n) for t, m, n in by_template.rows()} == {
        t: (pytest.approx(m), sum(1 for k, _ in rows if k == t)) for t, m in expected.items()}
    assert str(by_template) in printed[3] and str(scores.select("essay_gen_id", "evaluator", "score", "parse_status")) in printed[3]

    # 4. The plot: the scores by draft template, on the scale its label names.
    assert scores["scale"].unique().to_list() == ["0-10"]
    assert ns["axes"].get_ylabel() == "score (0-10)"
    assert sorted(label.get_text() for label in ns["axes"].get_xticklabels()) == sorted(expected)
    assert (tmp_path / "notebook_scores.png").stat().st_size > 1000
