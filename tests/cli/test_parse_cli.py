"""``daydream parse``: JSON output, exit 1 when nothing is found, exit 2 for bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_cli as _run

EVALUATION_FIXTURES = Path(__file__).parents[1] / "parsers" / "fixtures" / "evaluation"



def test_evaluation_prints_score_scale_and_parser(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = EVALUATION_FIXTURES / "rounding_arrow.txt"
    code, out, err = _run(["parse", "evaluation", str(fixture)], capsys)
    assert code == 0, err
    assert json.loads(out) == {"score": 7.0, "scale": "0-10", "parser": "final_score"}


def test_parser_option_and_nine_point_scale(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = EVALUATION_FIXTURES / "zero_to_nine_scale.txt"
    code, out, _ = _run(["parse", "evaluation", str(fixture), "--parser", "in_last_line"], capsys)
    assert code == 0
    assert json.loads(out) == {"score": 6.0, "scale": "0-9", "parser": "in_last_line"}


def test_details_flag_adds_text_and_details(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = EVALUATION_FIXTURES / "header_next_line.txt"
    code, out, _ = _run(["parse", "evaluation", str(fixture), "--details"], capsys)
    payload = json.loads(out)
    assert code == 0
    assert payload["text"] == "7"
    assert payload["details"]["rule"] == "label_next_line"
    assert payload["details"]["matched"] == "### Final Score:"


def test_no_score_exits_1_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        ["parse", "evaluation", str(EVALUATION_FIXTURES / "no_score.txt")], capsys
    )
    assert code == 1
    assert out == ""
    assert "final_score: no final score found" in err


def test_out_of_range_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        ["parse", "evaluation", str(EVALUATION_FIXTURES / "out_of_range.txt")], capsys
    )
    assert code == 1
    assert "12/10" in err and "outside the 0-10 scale" in err


def test_draft_prints_parser_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text('<think>hm</think>\n<essay-idea stage="2">Loop — with a critic.</essay-idea>\n')
    code, out, _ = _run(["parse", "draft", str(raw), "--parser", "essay_idea_last"], capsys)
    assert code == 0
    assert json.loads(out) == {"parser": "essay_idea_last", "text": "Loop — with a critic."}
    assert "—" in out  # printed as UTF-8, not \u escapes


def test_essay_default_parser_is_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text("\n  An essay.\n")
    code, out, _ = _run(["parse", "essay", str(raw)], capsys)
    assert (code, json.loads(out)) == (0, {"parser": "identity", "text": "An essay."})


def test_draft_strict_parser_without_block_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text("no tags here")
    code, _, err = _run(["parse", "draft", str(raw), "--parser", "essay_idea_last"], capsys)
    assert code == 1
    assert "no complete <essay-idea>" in err


def test_unknown_parser_exits_2_listing_known_names(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = str(EVALUATION_FIXTURES / "score_line_at_end.txt")
    code, _, err = _run(["parse", "evaluation", fixture, "--parser", "nope"], capsys)
    assert code == 2
    assert "unknown evaluation parser 'nope'" in err and "final_score, in_last_line" in err


def test_unknown_stage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = str(EVALUATION_FIXTURES / "score_line_at_end.txt")
    code, _, err = _run(["parse", "critique", fixture], capsys)
    assert code == 2
    assert "'critique' is not one of" in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["parse", "evaluation", str(tmp_path / "missing.txt")], capsys)
    assert code == 2
    assert "does not exist" in err


def test_non_utf8_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_bytes(b"SCORE: \xff7")
    code, _, err = _run(["parse", "evaluation", str(raw)], capsys)
    assert code == 2
    assert "is not UTF-8 text" in err


def test_reads_stdin_with_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Final rating: 5/9\n")))
    code, out, _ = _run(["parse", "evaluation", "-"], capsys)
    assert (code, json.loads(out)) == (0, {"score": 5.0, "scale": "0-9", "parser": "final_score"})


def test_installed_entry_point_end_to_end() -> None:
    """The real console path (python -m daydreaming_dagster), exit codes included."""
    fixture = str(EVALUATION_FIXTURES / "markdown_table_total.txt")
    ok = subprocess.run(
        [sys.executable, "-m", "daydreaming_dagster", "parse", "evaluation", fixture],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"score": 8.0, "scale": "0-10", "parser": "final_score"}
    failed = subprocess.run(
        [sys.executable, "-m", "daydreaming_dagster", "parse", "evaluation", "-"],
        input="no score at all\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1
    assert "no final score found" in failed.stderr
