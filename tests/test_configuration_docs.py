"""The README and .env.example document every environment variable the settings read
(the brief: "configuration (every env variable)"); a new setting without docs fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _read_by_settings() -> set[str]:
    source = (ROOT / "assyst" / "settings.py").read_text()
    return set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z0-9_]+)"', source))


def test_every_setting_is_documented_in_env_example_and_readme():
    names = _read_by_settings()
    assert len(names) > 50  # the pattern still finds them
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    undocumented = sorted(n for n in names if not re.search(rf"^#?\s*{n}=", example, re.M))
    assert undocumented == [], f"add to .env.example: {undocumented}"
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert missing == [], f"add to the README's settings table: {missing}"
