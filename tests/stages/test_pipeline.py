"""No stage barrier: with a producer board, a child's prompt is deferred while its parent is being
produced, and its raw step renders, calls and parses it as soon as the parent is parsed."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from daydreaming_dagster.stages.batch import run_parsed_batch, run_prompt_batch, run_raw_batch
from daydreaming_dagster.stages.context import StageContext
from daydreaming_dagster.stages.pipeline import (
    ProducerBoard,
    close_producer_board,
    open_producer_board,
    parents_of,
    producer_board,
    readiness,
)
from daydreaming_dagster.stages.settings import StageSettings

from .conftest import Chain, ScriptedProvider


def test_board_lists_what_is_still_coming(stage_root: Path, chain: Chain) -> None:
    board = open_producer_board("inv-1")
    assert producer_board("inv-1") is board and producer_board("other") is None and producer_board(None) is None
    parents = parents_of(StageContext.for_root(stage_root).layer, "essay", chain.essay)
    assert parents == [("draft", chain.draft)]
    assert readiness(board, parents) == "ready"  # nobody is producing the draft: go (and fail if absent)
    board.expect("draft", [chain.draft])
    assert readiness(board, parents) == "waiting"
    board.parsed("draft", chain.draft)
    assert readiness(board, parents) == "ready"
    board.expect("draft", [chain.draft])
    board.finished("draft", [chain.draft])
    assert readiness(board, parents) == "ready"
    close_producer_board("inv-1")
    assert producer_board("inv-1") is None


def _produce_draft_later(root: Path, chain: Chain, board: ProducerBoard, provider: ScriptedProvider) -> threading.Thread:
    """The draft's own pipelined run, in another thread, starting a little later."""
    def produce() -> None:
        time.sleep(0.4)
        ctx = StageContext.for_root(root)
        _, prompts = run_prompt_batch(ctx, "draft", [chain.draft], StageSettings(), run_id="run-drafts", board=board)
        asyncio.run(run_raw_batch(ctx, "draft", [chain.draft], StageSettings(), provider, run_id="run-drafts",
                                  prompts=prompts, board=board))
        board.finished("draft", [chain.draft])

    thread = threading.Thread(target=produce)
    thread.start()
    return thread


def test_child_starts_when_its_parent_is_parsed(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    board = ProducerBoard()
    board.expect("draft", [chain.draft])
    board.expect("essay", [chain.essay])
    ctx = StageContext.for_root(stage_root)
    report, prompts = run_prompt_batch(ctx, "essay", [chain.essay], StageSettings(), run_id="run-essays", board=board)
    assert [s.status for s in report.statuses] == ["deferred"] and prompts == {}
    assert not ctx.layer.prompt_path("essay", chain.essay).exists()

    producer = _produce_draft_later(stage_root, chain, board, provider)
    clock = time.monotonic()
    raw = asyncio.run(run_raw_batch(ctx, "essay", [chain.essay], StageSettings(), provider, run_id="run-essays",
                                    prompts=prompts, board=board))
    producer.join()
    assert time.monotonic() - clock >= 0.4  # it waited for the draft...
    assert [s.status for s in raw.statuses] == ["done"]
    assert [r.stage for r in provider.calls] == ["draft", "essay"]  # ...which came first
    # The essay was rendered from the draft's parsed text and parsed at once, by this run.
    assert ctx.layer.read_parsed("draft", chain.draft) in ctx.layer.read_prompt("essay", chain.essay)
    assert ctx.layer.read_parsed_metadata("essay", chain.essay)["run_id"] == "run-essays"
    parsed = run_parsed_batch(ctx, "essay", [chain.essay], StageSettings(), run_id="run-essays")
    assert [s.status for s in parsed.statuses] == ["done"]  # this run's work, not a reuse


def test_child_of_a_parent_that_never_comes_fails_with_the_reason(stage_root: Path, chain: Chain,
                                                                   provider: ScriptedProvider) -> None:
    board = ProducerBoard()
    board.expect("draft", [chain.draft])
    ctx = StageContext.for_root(stage_root)
    threading.Timer(0.2, board.finished, args=("draft", [chain.draft])).start()  # ended without output
    raw = asyncio.run(run_raw_batch(ctx, "essay", [chain.essay], StageSettings(), provider, run_id="r",
                                    prompts={}, board=board))
    [status] = raw.statuses
    assert status.status == "failed" and "parsed" in (status.error or "")
    assert provider.calls == []


def test_child_of_a_regenerated_parent_is_rendered_again_not_reused(stage_root: Path, chain: Chain,
                                                                   provider: ScriptedProvider) -> None:
    """The prompt on disk (what the prompt step's IO manager loads) predates the parent's new
    output: the pipelined raw step waits for the parent, renders again and calls again."""
    ctx = StageContext.for_root(stage_root)
    for stage, gen_id in (("draft", chain.draft), ("essay", chain.essay)):
        _, prompts = run_prompt_batch(ctx, stage, [gen_id], StageSettings())
        asyncio.run(run_raw_batch(ctx, stage, [gen_id], StageSettings(), provider, prompts=prompts))
        run_parsed_batch(ctx, stage, [gen_id], StageSettings())
    stale_prompt = ctx.layer.read_prompt("essay", chain.essay)
    provider.calls.clear()
    provider.texts["draft"] = provider.texts["draft"].replace("A bridge between ideas.", "A new idea.")

    board = ProducerBoard()
    board.expect("draft", [chain.draft])
    board.expect("essay", [chain.essay])

    def regenerate_draft() -> None:
        time.sleep(0.3)
        forced = StageSettings(force=True)
        _, prompts = run_prompt_batch(ctx, "draft", [chain.draft], forced, run_id="run-drafts", board=board)
        asyncio.run(run_raw_batch(ctx, "draft", [chain.draft], forced, provider, run_id="run-drafts",
                                  prompts=prompts, board=board))
        board.finished("draft", [chain.draft])

    producer = threading.Thread(target=regenerate_draft)
    producer.start()
    raw = asyncio.run(run_raw_batch(ctx, "essay", [chain.essay], StageSettings(), provider, run_id="run-essays",
                                    prompts={chain.essay: stale_prompt}, board=board))
    producer.join()
    assert [s.status for s in raw.statuses] == ["done"]
    assert [r.stage for r in provider.calls] == ["draft", "essay"]
    assert "A new idea." in ctx.layer.read_prompt("essay", chain.essay)
