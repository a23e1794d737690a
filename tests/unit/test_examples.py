"""The spec files under examples/ load and describe exactly the built-in presets."""

from __future__ import annotations

from pathlib import Path

import pytest
from rawstack_harness.topology import Topology, line3, load_yaml, pair

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(("name", "preset"), [("pair", pair()), ("line3", line3())])
def test_example_spec_is_the_preset(name: str, preset: Topology) -> None:
    assert load_yaml(EXAMPLES / f"{name}.yaml") == preset
