"""Helpers for the explorer tests: a synthetic cohort written through the data layer, the
explorer served by a real uvicorn server in a thread, and the injection payloads."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from daydreaming_dagster.combos import ComboRequest, register_combinations
from daydreaming_dagster.data_layer import GensDataLayer, Paths
from daydreaming_dagster.ids import draft_gen_id, essay_gen_id, evaluation_gen_id
from tests.support.servers import free_port

PAYLOADS = (
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    "[click me](javascript:window.__pwned=3)",
    "[data](data:text/html,<script>window.__pwned=4</script>)",
    "</textarea><script>window.__pwned = 5</script>",
    "</pre></details><svg onload=\"window.__pwned=6\"></svg>",
    "![pixel](/cohorts/demo?refresh=1&a=1) ![remote](http://127.0.0.1:9/pixel.png)",
)
"""Model text that would run script, or make the browser send a request, if a page rendered it
as HTML (an image with a same-origin URL made every reader's browser rebuild the cohort)."""
HOSTILE_TEXT = "# Hostile essay\n\n" + "\n\n".join(PAYLOADS) + "\n"


@dataclass(frozen=True)
class SyntheticCohort:
    """What :func:`write_synthetic_cohort` wrote."""

    root: Path
    cohort_id: str
    drafts: list[str]
    essays: list[str]
    evaluations: list[str]
    scores: dict[str, list[float]]
    """LLM scores per essay."""


def _score(gen_id: str) -> float:
    return float(int(hashlib.sha256(gen_id.encode()).hexdigest(), 16) % 11)


def essay_text(index: int, essay_id: str) -> str:
    """A short Markdown essay with a unique searchable word (``marker<index>``)."""
    return (f"# Essay number {index}\n\nThis essay ({essay_id}) links two ideas; marker{index} is its "
            f"unique word.\n\n- one point\n- another point with **emphasis**\n")


def write_synthetic_cohort(
    root: Path,
    cohort_id: str = "c1",
    *,
    combos: int = 3,
    draft_templates: tuple[str, ...] = ("links-a", "links-b"),
    essay_templates: tuple[str, ...] = ("essay-x", "essay-y"),
    evaluators: tuple[str, ...] = ("m1", "m2"),
    text: Callable[[int, str], str] = essay_text,
    fsync: bool = True,
    complete: bool = True,
) -> SyntheticCohort:
    """Write a fully generated cohort under ``root`` through the data layer: concepts,
    combinations, drafts (combo × draft template), essays (draft × essay template) and
    evaluations (essay × evaluator model, template ``rubric``, scores on 0-10), with
    ``membership.csv`` and ``manifest.json``. ``fsync=False`` and ``complete=False`` (only the
    files the explorer reads: metadata, essay texts, parsed metadata) write faster (benchmarks)."""
    paths = Paths.from_str(root)
    layer = GensDataLayer.from_root(root)
    if not fsync:
        layer = layer.deferred()
    n_concepts = 2
    while n_concepts * (n_concepts - 1) // 2 < combos:
        n_concepts += 1
    concepts = [f"concept-{i:03d}" for i in range(n_concepts)]
    paths.raw_dir.mkdir(parents=True, exist_ok=True)
    paths.concepts_metadata_csv.write_text(
        "concept_id,name\n" + "".join(f"{c},Concept {c[-3:]}\n" for c in concepts), encoding="utf-8")
    descriptions = paths.concept_descriptions_dir("paragraph")
    descriptions.mkdir(parents=True, exist_ok=True)
    for concept in concepts:
        (descriptions / f"{concept}.txt").write_text(f"A paragraph about {concept}.\n", encoding="utf-8")
    pairs = list(itertools.islice(itertools.combinations(concepts, 2), combos))
    combo_ids = register_combinations(root, [ComboRequest(pair, "paragraph", 2) for pair in pairs])

    usage = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
    ok = {"parser": "identity", "success": True, "error": None}
    drafts, essays, evaluations = [], [], []
    scores: dict[str, list[float]] = {}

    def meta(stage: str, gen_id: str, template: str, parent: str | None, combo: str, model: str) -> dict:
        return {"stage": stage, "gen_id": gen_id, "cohort_id": cohort_id, "template_id": template, "mode": "llm",
                "parent_gen_id": parent, "combo_id": combo, "llm_model_id": model, "replicate": 1}

    def write(stage: str, gen_id: str, metadata: dict, raw: str, parsed: str, parsed_meta: dict) -> None:
        layer.write_main_metadata(stage, gen_id, metadata)
        if complete:
            layer.write_prompt(stage, gen_id, f"prompt of {gen_id}")
            layer.write_raw(stage, gen_id, raw)
            layer.write_raw_metadata(stage, gen_id, {"finish_reason": "stop", "usage": usage, "cost_usd": 0.001})
        if complete or stage == "essay":
            layer.write_parsed(stage, gen_id, parsed)
        if complete or stage != "draft":
            layer.write_parsed_metadata(stage, gen_id, {"stage": stage, "gen_id": gen_id, **parsed_meta})

    for combo in combo_ids:
        for draft_template in draft_templates:
            draft = draft_gen_id(combo, draft_template, "m1", 1)
            drafts.append(draft)
            write("draft", draft, meta("draft", draft, draft_template, None, combo, "m1"),
                  f"notes for {combo}", f"links for {combo}", ok)
            for essay_template in essay_templates:
                essay = essay_gen_id(draft, essay_template, "m1", 1)
                body = text(len(essays), essay)
                essays.append(essay)
                write("essay", essay, meta("essay", essay, essay_template, draft, combo, "m1"), body, body, ok)
                for model in evaluators:
                    evaluation = evaluation_gen_id(essay, "rubric", model, 1)
                    score = _score(evaluation)
                    evaluations.append(evaluation)
                    scores.setdefault(essay, []).append(score)
                    write("evaluation", evaluation, meta("evaluation", evaluation, "rubric", essay, combo, model),
                          f"Reasoning about {essay}.\nSCORE: {score:g}", f"{score:g}",
                          {**ok, "parser": "in_last_line", "score": score, "scale": "0-10"})
    if not fsync:
        layer.flush()
    cohort_dir = paths.cohort_dir(cohort_id)
    cohort_dir.mkdir(parents=True, exist_ok=True)
    rows = ([("draft", g) for g in drafts] + [("essay", g) for g in essays]
            + [("evaluation", g) for g in evaluations])
    paths.cohort_membership_path(cohort_id).write_text(
        "stage,gen_id\n" + "".join(f"{s},{g}\n" for s, g in rows), encoding="utf-8")
    paths.cohort_manifest_path(cohort_id).write_text(json.dumps({"cohort_id": cohort_id}), encoding="utf-8")
    return SyntheticCohort(root, cohort_id, drafts, essays, evaluations, scores)


@contextmanager
def serve_in_thread(app: object, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a daemon thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="explorer-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the explorer test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- issue 20: comparison generations and the membership rows that list them -----------------
def comparison_id(essay_a: str, essay_b: str, template_id: str, judge: str, replicate: int = 1) -> str:
    """The comparison's gen id (``ids.comparison_gen_id``)."""
    from daydreaming_dagster.ids import comparison_gen_id

    return comparison_gen_id(essay_a, essay_b, template_id, judge, replicate)


@dataclass(frozen=True)
class PlannedComparison:
    """One comparison generation to write: the essays in the order shown to the judge, the judge,
    and its answer (``raw=None``: seeded but not run yet)."""

    essay_a: str
    essay_b: str
    judge: str
    raw: str | None
    verdict: str | None = None
    """``A``, ``B`` or ``tie`` (``None`` with a raw text: the parser found no verdict)."""
    template_id: str = "compare-overall"
    round: int = 1


def write_comparisons(root: Path, cohort_id: str, planned: list[PlannedComparison]) -> list[str]:
    """Write ``gens/comparison/<p_id>/`` for each planned comparison as the contract of issue 20
    lays it out, and list them as ``comparison`` rows of the cohort's ``membership.csv``."""
    paths = Paths.from_str(root)
    written = []
    for p in planned:
        gen_id = comparison_id(p.essay_a, p.essay_b, p.template_id, p.judge)
        folder = paths.gens_root / "comparison" / gen_id
        folder.mkdir(parents=True, exist_ok=True)
        metadata = {"stage": "comparison", "gen_id": gen_id, "template_id": p.template_id, "mode": "llm",
                    "parent_gen_id": p.essay_a, "parent_gen_ids": [p.essay_a, p.essay_b], "combo_id": None,
                    "llm_model_id": p.judge, "cohort_id": cohort_id, "replicate": 1, "round": p.round}
        (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
        if p.raw is not None:
            (folder / "prompt.txt").write_text(f'<essay id="A">\n{p.essay_a}\n</essay>', encoding="utf-8")
            (folder / "raw.txt").write_text(p.raw, encoding="utf-8")
            (folder / "raw_metadata.json").write_text(json.dumps({"finish_reason": "stop", "cost_usd": 0.001}),
                                                      encoding="utf-8")
            if p.verdict is not None:
                (folder / "parsed.txt").write_text(p.verdict, encoding="utf-8")
                parsed = {"stage": "comparison", "gen_id": gen_id, "parser": "pairwise_verdict", "success": True,
                          "verdict": p.verdict, "line": p.raw.strip().splitlines()[-1]}
            else:
                parsed = {"stage": "comparison", "gen_id": gen_id, "parser": "pairwise_verdict", "success": False,
                          "error": "no verdict line found"}
            (folder / "parsed_metadata.json").write_text(json.dumps(parsed), encoding="utf-8")
        written.append(gen_id)
    membership = paths.cohort_membership_path(cohort_id)
    with membership.open("a", encoding="utf-8") as handle:
        handle.writelines(f"comparison,{g}\n" for g in written)
    return written
