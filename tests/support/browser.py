"""Headless Chromium settings shared by the browser tests (Dagster UI, results explorer)."""

from __future__ import annotations

CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these, Chromium keeps trying to reach Google's hosts, which this closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Flags every headless Chromium of the test suite starts with (add a window size per test)."""
