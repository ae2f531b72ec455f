"""``daydream mock-llm`` as a user runs it: a real process on a free port, stopped by SIGTERM."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import httpx
import openai
import pytest

from daydreaming_dagster.cli import main


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output from mock-llm within {timeout} s")
    return proc.stdout.readline()


def test_mock_llm_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daydreaming_dagster",
            "mock-llm",
            "--port",
            "0",
            "--latency",
            "0.05",
            "--seed",
            "3",
            "--rate-limit",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first = _read_line(proc, 30)
        assert first.startswith("mock-llm listening on http://127.0.0.1:"), first
        url = first.split()[-1]
        assert proc.stdout is not None
        banner = "".join(proc.stdout.readline() for _ in range(3))  # printed with the first
        assert f"DAYDREAMING_LLM_BASE_URL={url}/v1" in banner
        assert '"rate_limit_per_s": 100' in banner and '"seed": 3' in banner
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="demo/model",
            messages=[{"role": "user", "content": "Rate this essay. SCORE: N"}],
        )
        assert reply.choices[0].message.content.strip().splitlines()[-1].startswith("SCORE: ")
        assert reply.usage is not None and reply.usage.total_tokens > 0
        stats = httpx.get(f"{url}/stats", timeout=5).json()
        assert stats["total"] == 1 and stats["by_model"] == {"demo/model": 1}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
        # Read through the same buffered stream (communicate() would skip its buffer).
        assert "mock-llm stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_mock_llm_rejects_bad_rates(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["mock-llm", "--error-rate", "1.5"])
    assert exit_info.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model-quota", "mock/model"], "MODEL=RPM[:TPM]"),
        (["--model-quota", "mock/model=fast"], "MODEL=RPM[:TPM]"),
        (["--latency-dist", "lognormal", "--latency-median", "5", "--latency-p99", "2"], "--latency-median"),
        (["--latency-dist", "gamma"], "lognormal"),
    ],
)
def test_mock_llm_rejects_bad_quotas_and_latencies(argv: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["mock-llm", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_mock_llm_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    from daydreaming_dagster.llm.mock_server import MockLLMServer

    with MockLLMServer() as busy:
        started = time.perf_counter()
        with pytest.raises(SystemExit) as exit_info:
            main(["mock-llm", "--port", str(busy.port)])
        assert exit_info.value.code == 2
        assert time.perf_counter() - started < 5
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{busy.port}" in err and "--port" in err


def test_mock_llm_help_lists_the_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daydreaming_dagster", "mock-llm", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for option in (
        "--port",
        "--latency",
        "--error-rate",
        "--rate-limit",
        "--truncate-rate",
        "--seed",
        "--latency-dist",
        "--latency-median",
        "--latency-p99",
        "--rpm",
        "--tpm",
        "--model-quota",
        "--request-log",
    ):
        assert option in done.stdout
