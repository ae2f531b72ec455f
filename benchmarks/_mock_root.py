"""What the benchmarks share: the local mock model server and a data root of mock-model catalogs.

Imported by the benchmark scripts run as ``python benchmarks/<name>.py`` (their folder is on
``sys.path`` then).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TEMPLATE_HEADER = "template_id,template_name,description,parser,generator\n"
ESSAY_TEMPLATE = "Write an essay expanding this idea:\n{{ draft_block }}\n"
EVALUATION_TEMPLATE = "Evaluate the essay below for novelty. End with a line SCORE: <0-10>.\n{{ response }}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mock_stats(url: str) -> dict:
    """The mock server's counters (``total`` = calls answered)."""
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
        return json.loads(response.read())


def start_mock(latency: float, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start ``daydream mock-llm`` in its own process (``extra``: more of its options, e.g. a
    latency distribution or quotas); return it and its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daydreaming_dagster", "mock-llm", "--port", str(port), "--latency", str(latency),
         *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            mock_stats(url)
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("mock server did not start within 30 s")


def _replicates(count: int) -> str:
    return ", ".join(str(i) for i in range(1, count + 1))


def write_mock_root(
    root: Path,
    cohort_id: str,
    *,
    draft_templates: dict[str, tuple[str, str]],
    drafts_per_template: int,
    evaluations_per_essay: int,
) -> None:
    """A data root of two concepts, the given draft templates (id -> (parser, text)), one essay
    template (``bench_essay``) and one evaluation template (``bench_eval``), every stage on the
    catalog model ``mock`` (an OpenRouter-style slug, priced), and a cohort ``cohort_id`` with
    ``drafts_per_template`` replicates per draft template, one essay per draft and
    ``evaluations_per_essay`` evaluations per essay."""
    raw = root / "1_raw"
    level_dir = raw / "concepts" / "descriptions-sentence"
    level_dir.mkdir(parents=True)
    (raw / "concepts_metadata.csv").write_text("concept_id,name\nlight,Light\nwater,Water\n")
    (level_dir / "light.txt").write_text("Light is electromagnetic radiation we can see.")
    (level_dir / "water.txt").write_text("Water is a molecule of hydrogen and oxygen.")
    templates = {
        "draft": draft_templates,
        "essay": {"bench_essay": ("identity", ESSAY_TEMPLATE)},
        "evaluation": {"bench_eval": ("final_score", EVALUATION_TEMPLATE)},
    }
    for stage, by_id in templates.items():
        rows = "".join(f"{template_id},{template_id},benchmark,{parser},llm\n" for template_id, (parser, _) in by_id.items())
        (raw / f"{stage}_templates.csv").write_text(TEMPLATE_HEADER + rows)
        for template_id, (_, text) in by_id.items():
            path = raw / "templates" / stage / f"{template_id}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    (raw / "llm_models.csv").write_text(
        "id,model,provider,display_name,specialization,input_price_per_mtok,output_price_per_mtok\n"
        "mock,mock/model,openrouter,Mock model,benchmark,1.0,2.0\n"
    )
    from daydreaming_dagster.combos import register_combination

    combo_id = register_combination(root, ["light", "water"], "sentence", 2)
    spec = root / "cohorts" / cohort_id / "spec" / "config.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(
        "axes:\n"
        f"  combo_id: [{combo_id}]\n"
        f"  draft_template: [{', '.join(draft_templates)}]\n  draft_llm: [mock]\n"
        f"  draft_template_replicate: [{_replicates(drafts_per_template)}]\n"
        "  essay_template: [bench_essay]\n  essay_llm: [mock]\n"
        "  evaluation_template: [bench_eval]\n  evaluation_llm: [mock]\n"
        f"  evaluation_template_replicate: [{_replicates(evaluations_per_essay)}]\n"
    )
