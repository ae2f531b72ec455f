"""The Dagster UI in a real browser (headless Chromium) over a materialised demo cohort.

`daydream run demo` fills a temporary data root and Dagster instance; one generation's three
draft assets are then materialised for a single partition, so that partition carries the
per-generation metadata (paths, ``reused``, tokens). `daydream ui --webserver-only` serves the
UI, started with SIGINT ignored the way a background job of a non-interactive shell is, and
Chromium renders the asset graph and that partition's page. SIGTERM must then stop the server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from daydreaming_dagster.cli.ui import DEFINITIONS_MODULE
from tests.support.browser import CHROMIUM_FLAGS as SHARED_CHROMIUM_FLAGS
from tests.support.servers import free_port
from tests.ui.support import (
    graphql,
    ignore_sigint,
    log_tail,
    process_tree,
    stop_with,
    wait_until_loaded,
)

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
GROUPS = ("cohort", "generation_draft", "generation_essay", "generation_evaluation", "results")
CHROMIUM_FLAGS = (
    *SHARED_CHROMIUM_FLAGS,
    "--virtual-time-budget=15000",
    "--window-size=1400,900",
)

pytestmark = pytest.mark.slow


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    reason = (
        "no chromium binary on PATH (scripts/install_system_deps.sh installs Debian's chromium)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run in CI, but: {reason}", pytrace=False)
    pytest.skip(reason)


class _VisibleText(HTMLParser):
    """Text nodes of a rendered DOM, one stripped string each, scripts and styles left out."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.lines.append(data.strip())


def _text_lines(dom: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(dom)
    return parser.lines


def _browser(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


def _rendered_text(chromium: str, profile: Path, url: str, expected: list[str]) -> list[str]:
    """The page's visible text once every ``expected`` string shows (a few tries: the React
    app fetches its data after the first paint)."""
    lines: list[str] = []
    for _ in range(3):
        lines = _text_lines(_browser(chromium, profile, "--dump-dom", url).stdout)
        if all(item in lines for item in expected):
            return lines
    return lines


def _value_after(lines: list[str], key: str) -> str | None:
    """The text right after the metadata key ``key`` (the UI renders key and value cells)."""
    for index, line in enumerate(lines[:-1]):
        if line == key:
            return lines[index + 1]
    return None


def _materialise_one_draft(data_root: Path) -> str:
    """Materialise the three draft assets of the cohort's first draft as a single partition."""
    from dagster import materialize

    from daydreaming_dagster.assets.generation import GENERATION_ASSETS
    from daydreaming_dagster.cohorts import read_membership
    from daydreaming_dagster.definitions import build_resources
    from daydreaming_dagster.orchestration import get_instance, quiet_run_config

    gen_id = read_membership(str(data_root), "demo")["draft"][0]
    with get_instance() as instance:
        result = materialize(
            GENERATION_ASSETS,
            selection=["draft_prompt", "draft_raw", "draft_parsed"],
            partition_key=gen_id,
            instance=instance,
            resources=build_resources(str(data_root)),
            run_config=quiet_run_config(),
        )
    assert result.success
    return gen_id


def test_asset_graph_and_generation_metadata_render_in_chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium = _chromium()
    started = time.perf_counter()
    data_root = tmp_path / "data"
    shutil.copytree(REPO_DATA / "1_raw", data_root / "1_raw")
    shutil.copytree(
        REPO_DATA / "cohorts" / "demo" / "spec", data_root / "cohorts" / "demo" / "spec"
    )
    monkeypatch.setenv("DAYDREAMING_DATA_ROOT", str(data_root))
    env = dict(os.environ)  # DAGSTER_HOME: the test's own (tests/conftest.py)

    run = subprocess.run(
        [sys.executable, "-m", "daydreaming_dagster", "run", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    assert "report:" in run.stdout
    gen_id = _materialise_one_draft(data_root)
    raw_path = data_root / "gens" / "draft" / gen_id / "raw.txt"
    raw_metadata = json.loads((raw_path.parent / "raw_metadata.json").read_text())
    total_tokens = raw_metadata["usage"]["total_tokens"]
    prepared = time.perf_counter()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "ui.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daydreaming_dagster",
                "ui",
                "--webserver-only",
                "--port",
                str(port),
            ],
            env=env,
            preexec_fn=ignore_sigint,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    tree: set[int] = set()
    try:
        ready_s = wait_until_loaded(base, server, log_path)
        tree = process_tree(server.pid)
        # The first-visit "join the community" dialog would cover the graph in the screenshot.
        assert graphql(base, "mutation { setNuxSeen }")["data"]["setNuxSeen"] is True
        profile = tmp_path / "chromium-profile"

        graph = _rendered_text(chromium, profile, f"{base}/asset-groups", list(GROUPS))
        missing_groups = [group for group in GROUPS if group not in graph]
        assert not missing_groups, (
            f"groups not shown on the asset graph: {missing_groups}; page text: {graph[:80]}"
        )
        screenshot = tmp_path / "asset_graph.png"
        _browser(chromium, profile, f"--screenshot={screenshot}", f"{base}/asset-groups")
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert screenshot.stat().st_size > 10_000  # a blank page is a few KB
        print(f"asset graph screenshot: {screenshot}")

        # The draft group's own lineage: its three assets, every demo draft materialised by
        # `daydream run` (the UI reads the same instance).
        draft_group = f"{base}/locations/{DEFINITIONS_MODULE}/asset-groups/generation_draft"
        draft_assets = ["draft_prompt", "draft_raw", "draft_parsed"]
        lines = _rendered_text(chromium, profile, draft_group, [*draft_assets, "100% filled"])
        assert all(name in lines for name in draft_assets), lines
        assert lines.count("100% filled") == 3 and lines.count("8 partitions") == 3, lines
        group_shot = tmp_path / "generation_draft.png"
        _browser(chromium, profile, f"--screenshot={group_shot}", draft_group)
        assert group_shot.stat().st_size > 10_000
        print(f"generation_draft group screenshot: {group_shot}")

        # One partition's latest materialisation: the per-generation metadata table.
        page = f"{base}/assets/draft_raw?view=partitions&partition={gen_id}"
        lines = _rendered_text(chromium, profile, page, ["reused", "total_tokens", str(raw_path)])
        assert gen_id in lines
        assert _value_after(lines, "reused") == "true", lines
        assert _value_after(lines, "total_tokens") == str(total_tokens), lines
        assert _value_after(lines, "path") == str(raw_path), lines
        assert _value_after(lines, "raw_metadata_path") == str(
            raw_path.parent / "raw_metadata.json"
        ), lines
    finally:
        stopped = stop_with(server, tree, signal.SIGTERM, timeout=10)
    assert stopped.returncode == 0, log_tail(log_path)
    assert not stopped.left_running, (
        f"UI processes still running after SIGTERM: {sorted(stopped.left_running)}"
    )
    print(
        f"demo run + one partition {prepared - started:.1f} s; UI ready in {ready_s:.1f} s; stopped "
        f"{stopped.seconds:.1f} s after SIGTERM; whole test {time.perf_counter() - started:.1f} s"
    )
