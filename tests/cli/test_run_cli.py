"""`daydream run / status / reparse / estimate` end to end on copies of the demo data root,
offline and against the mock OpenAI-compatible server (real HTTP, real openai SDK)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer
from tests.support.cli import run_cli


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(list(args), capsys)


def _all_parsed(root: Path, cohort: str) -> bool:
    layer = GensDataLayer.from_root(root)
    members = read_membership(root, cohort)
    return all(layer.parsed_exists(stage, g) for stage, ids in members.items() for g in ids)


def _raw_run_ids(root: Path, cohort: str) -> dict[str, str]:
    layer = GensDataLayer.from_root(root)
    members = read_membership(root, cohort)
    return {g: layer.read_raw_metadata(s, g)["run_id"] for s, ids in members.items() for g in ids}


@pytest.mark.slow
def test_run_demo_then_rerun_reuses_everything(demo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys, "run", "demo", "--data-root", str(demo_root))
    assert code == 0, err
    report = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    assert report.name == "report.md" and report.is_file()
    assert "Top 5 essays" in report.read_text()
    assert _all_parsed(demo_root, "demo")
    assert "evaluation  32/32  done 32" in err
    first = _raw_run_ids(demo_root, "demo")

    code, out, err = invoke(capsys, "run", "demo", "--data-root", str(demo_root))
    assert code == 0, err
    assert "draft       nothing to run: 8 reused" in err and "0 Dagster run(s)" in err
    assert _raw_run_ids(demo_root, "demo") == first  # nothing regenerated

    code, out, _ = invoke(capsys, "status", "demo", "--data-root", str(demo_root))
    assert code == 0 and "evaluation" in out and "32" in out

    code, out, _ = invoke(capsys, "reparse", "demo", "--stage", "evaluation", "--data-root", str(demo_root))
    assert code == 0 and "re-parsed 32 of 32" in out
    assert _raw_run_ids(demo_root, "demo") == first  # re-parsing calls no model


@pytest.mark.slow
def test_failures_exit_1_and_status_lists_them(demo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "run", "demo", "--stage", "draft", "--min-lines", "500",
                          "--no-report", "--data-root", str(demo_root))
    assert code == 1
    assert "failed 8" in err and "daydream status demo" in err
    code, out, _ = invoke(capsys, "status", "demo", "--data-root", str(demo_root))
    assert "draft failures (8)" in out and "fewer than the required 500" in out and "raw_failure.log" in out
    layer = GensDataLayer.from_root(demo_root)
    for gen_id in read_membership(demo_root, "demo")["draft"]:
        assert layer.raw_path("draft", gen_id).is_file()
        assert "reason=min_lines" in layer.read_raw_failure_log("draft", gen_id)


def test_bad_input_exits_2_with_one_line(demo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "run", "no_such_cohort", "--data-root", str(demo_root))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "no_such_cohort" in err
    code, _, err = invoke(capsys, "run", "demo", "--data-root", str(demo_root / "missing"))
    assert code == 2 and "does not exist" in err


def test_estimate_prices_remaining_calls(demo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _add_mock_cohort(demo_root)
    code, out, _ = invoke(capsys, "estimate", "mockrun", "--data-root", str(demo_root))
    assert code == 0, out
    # 4 drafts x 1 eval template: prices 1.0/2.0 per Mtok -> draft 4 x (700*1 + 900*2)/1e6.
    assert "draft       mock-model" in out and "0.0100" in out
    assert not (demo_root / "gens").exists()  # estimating writes nothing


def _add_mock_cohort(root: Path) -> None:
    with (root / "1_raw" / "llm_models.csv").open("a", encoding="utf-8") as handle:
        handle.write("mock-model,mock/model,openrouter,Mock,test,1.0,2.0,\n")
    header = (root / "1_raw" / "llm_models.csv").read_text().splitlines()[0]
    assert header.split(",")[5:7] == ["input_price_per_mtok", "output_price_per_mtok"], header
    spec = root / "cohorts" / "mockrun" / "spec" / "config.yaml"
    spec.parent.mkdir(parents=True)
    demo = (root / "cohorts" / "demo" / "spec" / "config.yaml").read_text()
    combos = demo[demo.index("combos:"):demo.index("axes:")]
    spec.write_text(
        combos
        + "axes:\n  draft_template: [links-ideas]\n  draft_llm: [mock-model]\n"
        + "  essay_template: [essay-expand]\n  essay_llm: [mock-model]\n"
        + "  evaluation_template: [eval-rubric]\n  evaluation_llm: [mock-model]\n"
    )


@pytest.mark.slow
def test_mock_server_multi_partition_run_budget_and_resume(
    demo_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_mock_cohort(demo_root)
    with MockLLMServer(MockConfig(latency_s=0.05)) as server:
        monkeypatch.setenv("DAYDREAMING_LLM_BASE_URL", server.base_url)
        # A budget smaller than one stage: calls stop starting once it is spent.
        code, _, err = invoke(capsys, "run", "mockrun", "--max-cost", "0.0005", "--concurrency", "1",
                              "--no-report", "--data-root", str(demo_root))
        assert code == 1, err
        paid_first = server.stats()["total"]
        assert 0 < paid_first < 12
        layer = GensDataLayer.from_root(demo_root)
        members = read_membership(demo_root, "mockrun")
        assert len(members["draft"]) == 4 and len(members["essay"]) == 4 and len(members["evaluation"]) == 4
        # Every paid call persisted its raw output; refused ones left no raw output behind.
        persisted = sum(layer.raw_path(s, g).is_file() for s, ids in members.items() for g in ids)
        assert persisted == paid_first

        # Resume without a budget: only the missing generations are paid for, exactly once each.
        code, _, err = invoke(capsys, "run", "mockrun", "--concurrency", "8", "--data-root", str(demo_root))
        assert code == 0, err
        stats = server.stats()
    assert stats["total"] == 12  # 4 drafts + 4 essays + 4 evaluations, no duplicate call
    assert stats["by_status"] == {"200": 12}
    for stage, ids in members.items():
        stage_dir = demo_root / "gens" / stage
        assert (sorted(p.name for p in stage_dir.iterdir()) if stage_dir.is_dir() else []) == sorted(ids)
        for gen_id in ids:
            meta = json.loads(layer.raw_metadata_path(stage, gen_id).read_text())
            assert meta["provider"] == "endpoint" and meta["usage"]["total_tokens"] > 0
            assert meta["cost_usd"] > 0 and meta["cost_source"] == "provider"
