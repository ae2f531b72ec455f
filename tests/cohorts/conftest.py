"""Fixtures for cohort tests: spec writing and a copy of the shipped demo data root."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a spec (YAML text, or a mapping dumped as YAML/JSON/TOML) plus include files."""

    def _write(spec: str | dict[str, Any], *, name: str = "config.yaml", files: dict[str, str] | None = None) -> Path:
        spec_dir = tmp_path / "spec"
        spec_dir.mkdir(exist_ok=True)
        for relative, text in (files or {}).items():
            target = spec_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text))
        path = spec_dir / name
        if isinstance(spec, str):
            path.write_text(textwrap.dedent(spec))
        elif name.endswith(".json"):
            path.write_text(json.dumps(spec))
        elif name.endswith(".toml"):
            path.write_text(_to_toml(spec))
        else:
            path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return _write


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _to_toml(spec: dict[str, Any]) -> str:
    lines = []
    for section, body in spec.items():
        lines.append(f"[{section}]")
        for key, value in body.items():
            lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


