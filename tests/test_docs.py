"""The docs stay true to the code: every setting is documented, the README's commands exist."""

from __future__ import annotations

from pathlib import Path

from backend.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [n for n in Settings.model_fields if f"`GENHOOK_{n.upper()}`" not in text]
    assert missing == []


def test_the_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```", 2)[1].strip().splitlines()
    commands = [line for line in block[1:] if line and not line.startswith("#")]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/genhook up",
        "scripts/test",
    ]
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
