"""docs/campaign-format.md lists exactly the campaign table, with its defaults.

The field tables in the doc are checked against bench/campaign/fields.py,
key by key: a field added to the table without a doc row (or a default
changed on one side only) fails here, so the manual cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bench.campaign.fields import AXES, FIELDS, MODEL_FIELDS, STRUCTURE
from tests.conftest import REPO

DOC = REPO / "docs" / "campaign-format.md"
ROW = re.compile(r"^\| `([^`]+)` \| (.+?) \| (.+) \|$")


def yaml_text(value: Any) -> str:
    """A default as the doc writes it, in YAML."""
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, tuple | list):
        return "`[" + ", ".join(yaml_text(v).strip("`") for v in value) + "]`"
    if isinstance(value, Mapping):
        assert not value, "a non-empty mapping default needs its own doc convention"
        return "`{}`"
    return f"`{value}`"


def documented(section: str) -> dict[str, tuple[str, str]]:
    """key -> (default, meaning) of the table under heading ``section``."""
    text = DOC.read_text()
    body = text.split(f"### {section}\n", 1)[1].split("\n#", 1)[0]
    rows = [ROW.match(line) for line in body.splitlines()]
    return {m.group(1): (m.group(2), m.group(3)) for m in rows if m}


def test_top_level_keys_and_defaults_match_the_table() -> None:
    expected = {f.key: yaml_text(f.default) for f in FIELDS}
    expected |= {"models": "required", "exclude": "`[]`"}
    assert set(STRUCTURE) == {"models", "exclude"}
    rows = documented("Top level")
    assert {k: d for k, (d, _) in rows.items()} == expected


def test_axes_and_their_defaults_match_the_table() -> None:
    rows = documented("Matrix axes")
    expected = {a.key: "the backend's" if a.backend_default else yaml_text(a.default) for a in AXES}
    assert {k: d for k, (d, _) in rows.items()} == expected


def test_model_keys_and_defaults_match_the_table() -> None:
    expected = {"name": "required"}
    expected |= {a.model_key: "the campaign's" for a in AXES if a.model_key}
    expected |= {m.key: yaml_text(m.default) for m in MODEL_FIELDS}
    rows = documented("Model entries (`models:`)")
    assert {k: d for k, (d, _) in rows.items()} == expected


def test_every_row_says_what_the_key_means() -> None:
    for section in ("Top level", "Matrix axes", "Model entries (`models:`)"):
        for key, (_, meaning) in documented(section).items():
            assert len(meaning) > 20 and meaning.endswith("."), (section, key)
