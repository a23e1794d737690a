"""The declarative topology spec: frozen dataclasses, dict/YAML loading, presets."""

from __future__ import annotations

from rawstack_harness.topology.load import from_dict, load_yaml, to_dict
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
    "Endpoint",
    "Link",
    "Node",
    "Route",
    "SpecError",
    "Topology",
    "from_dict",
    "line3",
    "load_yaml",
    "pair",
    "to_dict",
    "validate",
]
