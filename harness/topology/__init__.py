"""The declarative topology spec: frozen dataclasses, dict/YAML loading, presets."""

from __future__ import annotations

from rawstack_harness.topology.impair import Impairment, LinkImpairment, parse_link_impair
from rawstack_harness.topology.load import PRESETS, SpecLike, from_dict, load, load_yaml, to_dict
from rawstack_harness.topology.presets import line3, pair
from rawstack_harness.topology.spec import (
    Endpoint,
    Link,
    Member,
    Node,
    Route,
    Segment,
    SpecError,
    Topology,
    validate,
)

__all__ = [
    "PRESETS",
    "Endpoint",
    "Impairment",
    "Link",
    "LinkImpairment",
    "Member",
    "Node",
    "Route",
    "Segment",
    "SpecError",
    "SpecLike",
    "Topology",
    "from_dict",
    "line3",
    "load",
    "load_yaml",
    "pair",
    "parse_link_impair",
    "to_dict",
    "validate",
]
