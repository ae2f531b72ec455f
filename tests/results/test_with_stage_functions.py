"""The results layer reads exactly what the real stage functions write (offline provider)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.ids import draft_gen_id, essay_gen_id, evaluation_gen_id
from daydreaming_dagster.llm.offline import OfflineProvider
from daydreaming_dagster.reporting import build_report
from daydreaming_dagster.results import essay_aggregates, evaluation_scores
from daydreaming_dagster.stages.batch import run_parsed_batch, run_prompt_batch, run_raw_batch_sync
from daydreaming_dagster.stages.context import StageContext
from daydreaming_dagster.stages.settings import StageSettings

from ..stages.conftest import write_catalogs


def _seed(root: Path) -> dict[str, list[str]]:
    """One draft, an llm essay and a copy essay, two evaluation replicates of each essay."""
    from daydreaming_dagster.combos import register_combination

    (root / "1_raw" / "llm_models.csv").write_text("id,model,provider,display_name,specialization\noff,offline-model,offline,Offline,test\n")
    layer = GensDataLayer.from_root(root)
    combo = register_combination(root, ["alpha", "beta"], "sentence", 2)
    draft = draft_gen_id(combo, "d1", "off", 1)
    essays = [(essay_gen_id(draft, "e1", "off", 1), "e1", "off", "llm"),
              (essay_gen_id(draft, "e_copy", None, 1), "e_copy", None, "copy")]
    evaluations = [(evaluation_gen_id(e, "v1", "off", r), e, r) for e, *_ in essays for r in (1, 2)]
    base = {"cohort_id": "live", "combo_id": combo}
    layer.write_main_metadata("draft", draft, {**base, "stage": "draft", "gen_id": draft, "template_id": "d1",
                                               "parent_gen_id": None, "llm_model_id": "off", "mode": "llm", "replicate": 1})
    for gid, template, model, mode in essays:
        layer.write_main_metadata("essay", gid, {**base, "stage": "essay", "gen_id": gid, "template_id": template,
                                                 "parent_gen_id": draft, "llm_model_id": model, "mode": mode, "replicate": 1})
    for gid, essay, replicate in evaluations:
        layer.write_main_metadata("evaluation", gid, {**base, "stage": "evaluation", "gen_id": gid, "template_id": "v1",
                                                      "parent_gen_id": essay, "llm_model_id": "off", "mode": "llm",
                                                      "replicate": replicate})
    members = {"draft": [draft], "essay": [e for e, *_ in essays], "evaluation": [v for v, *_ in evaluations]}
    cohort_dir = root / "cohorts" / "live"
    cohort_dir.mkdir(parents=True)
    lines = ["stage,gen_id"] + [f"{stage},{gid}" for stage, ids in members.items() for gid in ids]
    (cohort_dir / "membership.csv").write_text("\n".join(lines) + "\n")
    return members


def test_scores_match_what_the_stages_persisted(data_root: Path) -> None:
    write_catalogs(data_root)
    members = _seed(data_root)
    ctx = StageContext.for_root(data_root)
    settings = StageSettings()
    for stage in ("draft", "essay", "evaluation"):
        run_prompt_batch(ctx, stage, members[stage], settings)
        run_raw_batch_sync(ctx, stage, members[stage], settings, OfflineProvider())
        parsed = run_parsed_batch(ctx, stage, members[stage], settings)
        assert parsed.failures == [], parsed.failures

    # Turn one evaluation into a real parse failure: the real parser records it.
    broken = members["evaluation"][3]
    ctx.layer.write_raw("evaluation", broken, "An opinion without any number.")
    assert run_parsed_batch(ctx, "evaluation", [broken], settings).count("failed") == 1

    scores = evaluation_scores(data_root, "live")
    assert scores.height == 4
    for row in scores.iter_rows(named=True):
        gid = row["evaluation_gen_id"]
        raw_meta = ctx.layer.read_raw_metadata("evaluation", gid)
        assert row["total_tokens"] == raw_meta["usage"]["total_tokens"] > 0
        assert row["cost_usd"] == 0.0
        parsed_meta = ctx.layer.read_parsed_metadata("evaluation", gid)
        if gid == broken:
            assert (row["parse_status"], row["score"]) == ("parse_error", None)
            assert row["error"] == parsed_meta["error"]
        else:
            assert (row["parse_status"], row["score"], row["scale"]) == ("ok", parsed_meta["score"], parsed_meta["scale"])
            assert 0.0 <= row["score"] <= 10.0
    copy_rows = scores.filter(pl.col("essay_mode") == "copy")
    assert copy_rows["essay_llm"].to_list() == [None, None]
    assert copy_rows["concept_ids"].to_list() == ["alpha;beta", "alpha;beta"]

    aggregates = essay_aggregates(scores)
    assert aggregates["n"].sum() == 3
    report = build_report(data_root, "live", top_n=2).read_text()
    assert "## Failed and missing generations (1)" in report
    assert aggregates["essay_gen_id"][0] in report.split("## Top 2 essays", 1)[1].split("##", 1)[0]
