"""Scale benchmark of the cohort compiler and metadata seeding.

Builds a synthetic data root in a temporary directory (concepts, templates, models) and a
cohort spec whose membership has more than 100,000 evaluations (with their drafts and
essays), then measures:

- compile: spec -> design rows -> membership with every gen id (plus catalog validation),
  wall time, rows per second and peak Python memory (tracemalloc, separate pass);
- seeding: ``build_cohort`` into the temporary root (register combos, write one
  ``metadata.json`` per generation, ``membership.csv``, ``manifest.json``);
- re-build of the unchanged cohort (must write nothing);
- peak resident memory of the process (``ru_maxrss``).

Targets (issue 3): compile under 5 s and under 1 GB for 100k evaluation rows.

    uv run python benchmarks/cohort_scale.py            # full run (~100k+ evaluations)
    uv run python benchmarks/cohort_scale.py --no-seed  # compile only
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from daydreaming_dagster.catalogs import load_catalogs
from daydreaming_dagster.cohorts import build_cohort, build_membership, compile_spec, load_spec

CONCEPTS = 25  # every 2-subset: 300 combos
DRAFT_TEMPLATES = ["draft-a", "draft-b"]
ESSAY_TEMPLATES = ["essay-a", "essay-b", "essay-copy"]
EVAL_TEMPLATES = ["eval-a", "eval-b", "eval-c"]
MODELS = ["model-1", "model-2", "model-3"]


def write_catalogs(root: Path) -> None:
    """Synthetic catalogs: concepts with descriptions, templates and models."""
    raw = root / "1_raw"
    (raw / "concepts" / "descriptions-sentence").mkdir(parents=True)
    lines = ["concept_id,name"]
    for i in range(CONCEPTS):
        cid = f"concept-{i:02d}"
        lines.append(f"{cid},Concept {i}")
        (raw / "concepts" / "descriptions-sentence" / f"{cid}.txt").write_text(f"Description of concept {i}.\n")
    (raw / "concepts_metadata.csv").write_text("\n".join(lines) + "\n")
    for stage, templates in (("draft", DRAFT_TEMPLATES), ("essay", ESSAY_TEMPLATES), ("evaluation", EVAL_TEMPLATES)):
        rows = ["template_id,template_name,description,parser,generator"]
        (raw / "templates" / stage).mkdir(parents=True)
        for template in templates:
            generator = "copy" if template.endswith("copy") else "llm"
            rows.append(f"{template},{template},synthetic,,{generator}")
            (raw / "templates" / stage / f"{template}.txt").write_text("{{ concepts }}{{ draft_block }}{{ response }}\n")
        (raw / f"{stage}_templates.csv").write_text("\n".join(rows) + "\n")
    models = ["id,model,provider,display_name,specialization"]
    models += [f"{m},offline-synthetic,offline,{m}," for m in MODELS]
    (raw / "llm_models.csv").write_text("\n".join(models) + "\n")


def write_spec(root: Path, cohort_id: str) -> Path:
    """A spec exercising combos, a pair, a tuple and a replicate axis."""
    spec_dir = root / "cohorts" / cohort_id / "spec"
    spec_dir.mkdir(parents=True)
    concepts = [f"concept-{i:02d}" for i in range(CONCEPTS)]
    evaluators = [[t, m] for t in EVAL_TEMPLATES for m in MODELS]
    (spec_dir / "evaluators.csv").write_text(
        "evaluation_template,evaluation_llm\n" + "".join(f"{t},{m}\n" for t, m in evaluators)
    )
    spec = {
        "combos": {"pairs": {"concepts": concepts, "k": 2, "level": "sentence"}},
        "axes": {
            "draft_template": DRAFT_TEMPLATES,
            "draft_llm": MODELS[:2],
            "essay_template": ESSAY_TEMPLATES,
            "essay_llm": MODELS[:2],
            "evaluation_template_replicate": [1, 2],
        },
        "rules": {
            "pairs": {
                "draft_essay": {
                    "left": "draft_template",
                    "right": "essay_template",
                    "allowed": [[d, e] for d in DRAFT_TEMPLATES for e in ESSAY_TEMPLATES],
                    "balance": "both",
                }
            },
            "tuples": {"evaluator": {"axes": ["evaluation_template", "evaluation_llm"], "items": "@file:evaluators.csv"}},
        },
    }
    path = spec_dir / "config.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def compile_once(root: Path, spec_path: Path) -> tuple[int, dict[str, int], dict[str, float]]:
    """Load, compile and build the membership once; return (design rows, counts, timings)."""
    t0 = time.perf_counter()
    spec = load_spec(spec_path)
    design = compile_spec(spec)
    t1 = time.perf_counter()
    catalogs = load_catalogs(root, require_concepts=True)
    generated = [r.combo_id for r in spec.combo_requests()]
    membership = build_membership(design, catalogs, extra_combo_ids=generated, source=str(spec_path))
    t2 = time.perf_counter()
    return len(design), membership.counts(), {"design_s": t1 - t0, "membership_s": t2 - t1, "compile_s": t2 - t0}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-seed", action="store_true", help="measure compilation only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data root")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cohort_scale_"))
    root = tmp / "data"
    figures: dict[str, object] = {}
    try:
        write_catalogs(root)
        spec_path = write_spec(root, "scale")

        rss_before = peak_rss_mb()
        gc.collect()
        rows, counts, timings = compile_once(root, spec_path)
        figures.update(timings)
        figures["design_rows"] = rows
        figures["generations"] = counts
        figures["rows_per_s"] = rows / timings["compile_s"]
        figures["evaluations_per_s"] = counts["evaluation"] / timings["compile_s"]
        figures["peak_rss_after_compile_mb"] = peak_rss_mb()
        figures["peak_rss_before_compile_mb"] = rss_before

        gc.collect()
        tracemalloc.start()
        compile_once(root, spec_path)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        figures["compile_peak_traced_mb"] = peak / 2**20

        if not args.no_seed:
            gc.collect()
            t0 = time.perf_counter()
            build = build_cohort(root, "scale")
            figures["build_with_seeding_s"] = time.perf_counter() - t0
            figures["metadata_files_written"] = build.metadata_written
            figures["metadata_files_per_s"] = build.metadata_written / figures["build_with_seeding_s"]
            t0 = time.perf_counter()
            again = build_cohort(root, "scale")
            figures["rebuild_unchanged_s"] = time.perf_counter() - t0
            figures["rebuild_files_changed"] = len(again.files_changed)
            figures["rebuild_metadata_written"] = again.metadata_written
        figures["peak_rss_mb"] = peak_rss_mb()
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    counts = figures["generations"]
    print(f"design rows:            {figures['design_rows']:,}")
    print(f"generations:            {counts['draft']:,} drafts, {counts['essay']:,} essays, {counts['evaluation']:,} evaluations")
    print(f"compile (design):       {figures['design_s']:.2f} s")
    print(f"compile (membership):   {figures['membership_s']:.2f} s  (gen ids + catalog validation)")
    print(f"compile total:          {figures['compile_s']:.2f} s  ({figures['rows_per_s']:,.0f} design rows/s, "
          f"{figures['evaluations_per_s']:,.0f} evaluations/s)")
    print(f"compile peak memory:    {figures['compile_peak_traced_mb']:.0f} MB traced (Python allocations)")
    if "build_with_seeding_s" in figures:
        print(f"build with seeding:     {figures['build_with_seeding_s']:.1f} s  "
              f"({figures['metadata_files_written']:,} metadata.json, {figures['metadata_files_per_s']:,.0f} files/s)")
        print(f"re-build (unchanged):   {figures['rebuild_unchanged_s']:.1f} s  "
              f"({figures['rebuild_metadata_written']} metadata written, {figures['rebuild_files_changed']} files changed)")
    print(f"peak RSS:               {figures['peak_rss_mb']:.0f} MB (process, incl. interpreter and imports)")
    ok = figures["compile_s"] < 5 and figures["peak_rss_mb"] < 1024 and counts["evaluation"] >= 100_000
    print(f"target (compile < 5 s, < 1 GB, >= 100k evaluations): {'met' if ok else 'NOT met'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
