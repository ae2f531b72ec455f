"""Scale benchmark of the pre-flight check (issue 14).

Builds the synthetic cohort of ``cohort_scale.py`` (over 100,000 evaluations, with their drafts
and essays; offline models) in a temporary data root, with templates that use only their
stage's variables, then measures:

- ``preflight_rows_s``: :func:`~daydreaming_dagster.preflight.preflight` over the membership rows,
  as ``daydream run`` / ``launch`` call it after building the cohort;
- ``preflight_metadata_s``: :func:`~daydreaming_dagster.preflight.cohort_preflight` over every
  evaluation id (reads each ``metadata.json``), as the first step of a Dagster run over a whole
  stage does when no caller checked the cohort before;
- ``renders``: how many template renders pre-flight made (drafts render per combination,
  essays and evaluations once per template).

    uv run python benchmarks/preflight_scale.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from cohort_scale import write_catalogs, write_spec  # noqa: E402

from daydreaming_dagster.cohorts import build_cohort  # noqa: E402
from daydreaming_dagster.preflight import cohort_preflight, preflight  # noqa: E402
from daydreaming_dagster.stages import prompt as prompt_module  # noqa: E402

TEMPLATE_TEXT = {
    "draft": "Concepts:\n{% for c in concepts %}- {{ c.name }}: {{ c.content }}\n{% endfor %}",
    "essay": "Expand these notes into an essay:\n{{ draft_block }}\n",
    "evaluation": "Rate this essay from 0 to 10, end with SCORE: N\n{{ response }}\n",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="daydream-preflight-"))
    try:
        write_catalogs(root)
        for stage, text in TEMPLATE_TEXT.items():
            for path in (root / "1_raw" / "templates" / stage).glob("*.txt"):
                path.write_text(text)
        write_spec(root, "scale")
        t0 = time.perf_counter()
        membership = build_cohort(root, "scale").membership
        build_s = time.perf_counter() - t0
        rows = list(membership.all_rows())

        renders = 0
        original = prompt_module.render_template

        def counting(*a: object, **k: object) -> str:
            nonlocal renders
            renders += 1
            return original(*a, **k)  # type: ignore[arg-type]

        prompt_module.render_template = counting  # type: ignore[assignment]
        t1 = time.perf_counter()
        report = preflight(root, rows)
        rows_s = time.perf_counter() - t1
        prompt_module.render_template = original

        evaluations = membership.gen_ids("evaluation")
        t2 = time.perf_counter()
        by_metadata = cohort_preflight(root, {"evaluation": evaluations})
        metadata_s = time.perf_counter() - t2
        figures = {
            "generations": len(rows),
            "evaluations": len(evaluations),
            "build_s": round(build_s, 2),
            "preflight_rows_s": round(rows_s, 3),
            "preflight_metadata_s": round(metadata_s, 3),
            "renders": renders,
            "problems": len(report.problems) + len(by_metadata.problems),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:<22} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["problems"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
