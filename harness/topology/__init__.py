"""The declarative topology spec: frozen dataclasses, dict/YAML loading, presets."""

from __future__ import annotations

from rawstack_harness.topology.load import PRESETS, SpecLike, from_dict, load, load_yaml, to_dict
from rawstack_harness.topology.presets import line3, pair
from rawstack_harness.topology.spec import (
    Endpoint,
    Link,
    Node,
    Route,
    SpecError,
    Topology,
    validate,
)

__all__ = [
    "PRESETS",
    "Endpoint",
    "Link",
    "Node",
    "Route",
    "SpecError",
    "SpecLike",
    "Topology",
    "from_dict",
    "line3",
    "load",
    "load_yaml",
    "pair",
    "to_dict",
    "validate",
]
