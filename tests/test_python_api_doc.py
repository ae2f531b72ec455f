"""docs/python_api.md is a notebook session that must keep working: run its python blocks in
order, in a scratch copy of the shipped catalogs, against the real mock server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.demo import copy_demo

DOC = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.slow
def test_python_api_doc_session_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    copy_demo(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAYDREAMING_LLM_BASE_URL", raising=False)
    namespace: dict[str, object] = {}
    try:
        for index, block in enumerate(blocks):
            exec(compile(block, f"{DOC.name} block {index + 1}", "exec"), namespace)  # noqa: S102 - the doc is ours
    finally:
        server = namespace.get("server")
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    scores = namespace["scores"]
    assert scores.height == 8 and scores["score"].null_count() == 0  # type: ignore[attr-defined]
    assert (tmp_path / "notebook_scores.png").stat().st_size > 1000
    assert namespace["outcome"].report_state == "built"  # type: ignore[attr-defined]
