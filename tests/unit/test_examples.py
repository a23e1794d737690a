"""The spec files under examples/ are the built-in presets; presets load by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from rawstack_harness.topology import SpecError, Topology, line3, load, load_yaml, pair, to_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(("name", "preset"), [("pair", pair()), ("line3", line3())])
def test_example_spec_is_the_preset(name: str, preset: Topology) -> None:
    assert load_yaml(EXAMPLES / f"{name}.yaml") == preset


@pytest.mark.parametrize(("name", "preset"), [("pair", pair()), ("line3", line3())])
def test_a_preset_is_reached_by_name(name: str, preset: Topology) -> None:
    """From any project: no path into this repository is needed."""
    assert load(name) == preset


def test_an_unknown_name_lists_the_presets() -> None:
    with pytest.raises(SpecError, match=r"no preset named 'line4' \(presets: pair, line3; "):
        load("line4")


def test_paths_dicts_and_topologies_load_too() -> None:
    assert load(EXAMPLES / "line3.yaml") == line3()
    assert load(str(EXAMPLES / "pair.yaml")) == pair()
    assert load(to_dict(line3())) == line3()
    assert load(pair()) == pair()
    with pytest.raises(SpecError, match=r"cannot read \./line3"):
        load("./line3")  # a path, not the preset
