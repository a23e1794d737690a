"""Impairment specs: units, field paths, per-direction form, and the mechanism plan."""

from __future__ import annotations

import random

import pytest
from rawstack_harness.backends.linux.impair import tc
from rawstack_harness.backends.linux.impair.plan import Features, Plan, plan
from rawstack_harness.backends.linux.impair.relay import DelayLine, Direction
from rawstack_harness.errors import MissingFeature
from rawstack_harness.topology.impair import (
    Impairment,
    LinkImpairment,
    parse_impairment,
    parse_link_impair,
)
from rawstack_harness.topology.spec import SpecError

NO_NETEM = Features(tbf=True, htb=True, clsact_bpf=True, packet=True)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ({"delay": "20ms"}, Impairment(delay_us=20_000, delay_line=True)),
        ({"delay": "1.5s", "jitter": "250us"}, Impairment(1_500_000, 250, delay_line=True)),
        ({"loss": "1%", "duplicate": "0.5%"}, Impairment(loss=0.01, duplicate=0.005)),
        ({"rate": "10mbit"}, Impairment(rate_bps=10_000_000)),
        ({"rate": "64kbit"}, Impairment(rate_bps=64_000)),
        ({"rate": "1gbit"}, Impairment(rate_bps=10**9)),
        ({"delay": "5ms", "reorder": "25%"}, Impairment(5000, reorder=0.25, delay_line=True)),
    ],
)
def test_units(raw: dict[str, str], want: Impairment) -> None:
    assert parse_impairment("impair", raw) == want


@pytest.mark.parametrize(
    ("raw", "path", "words"),
    [
        ({"delay": "20"}, "links[0].impair.delay", "not a time"),
        ({"delay": 20}, "links[0].impair.delay", "not a time"),
        ({"delay": "2min"}, "links[0].impair.delay", "not a time"),
        ({"loss": "0.1"}, "links[0].impair.loss", "not a percentage"),
        ({"loss": "101%"}, "links[0].impair.loss", "more than 100%"),
        ({"rate": "10mbps"}, "links[0].impair.rate", "not a rate"),
        ({"rate": "1kbit"}, "links[0].impair.rate", "below 8kbit"),
        ({"latency": "5ms"}, "links[0].impair.latency", "unknown impairment"),
        ({"delay": "1ms", "jitter": "2ms"}, "links[0].impair.jitter", "delay >= jitter"),
        ({"reorder": "5%"}, "links[0].impair.reorder", "needs a delay"),
        ({"a": {"loss": "x"}}, "links[0].impair.a.loss", "not a percentage"),
        ({"a": {}, "loss": "1%"}, "links[0].impair", "not both"),
        ("20ms", "links[0].impair", "expected a mapping"),
    ],
)
def test_errors_name_the_field(raw: object, path: str, words: str) -> None:
    with pytest.raises(SpecError, match=words) as err:
        parse_link_impair("links[0].impair", raw)
    assert err.value.path == path


def test_one_mapping_is_both_directions_and_a_b_split_them() -> None:
    both = parse_link_impair("i", {"loss": "10%"})
    assert both == LinkImpairment(Impairment(loss=0.1), Impairment(loss=0.1))
    split = parse_link_impair("i", {"a": {"delay": "5ms"}, "b": {"loss": "10%"}})
    assert split.a == Impairment(delay_us=5000, delay_line=True)
    assert split.b == Impairment(loss=0.1)
    assert parse_link_impair("i", {"b": {"loss": "1%"}}).a == Impairment()


def test_describe_round_trips_the_spec_words() -> None:
    imp = parse_impairment("i", {"delay": "20ms", "jitter": "2ms", "loss": "1%", "rate": "10mbit"})
    assert imp.describe() == "delay 20ms jitter 2ms loss 1% rate 10mbit"
    assert Impairment().describe() == "none"
    assert parse_impairment("i", {"delay": "0ms"}).describe() == "delay 0ms"


def test_netem_serves_everything_where_it_exists() -> None:
    feats = Features(netem=True, packet=True)
    assert plan(Impairment(delay_us=1, loss=0.1, rate_bps=10**6), feats) == Plan(netem=True)
    assert plan(Impairment(), feats) == Plan()


def test_without_netem_each_part_has_its_mechanism() -> None:
    assert plan(Impairment(rate_bps=10**6), NO_NETEM) == Plan(rate="tbf")
    assert plan(Impairment(loss=0.1), NO_NETEM) == Plan(bpf=True)
    assert plan(Impairment(delay_us=10), NO_NETEM) == Plan(relay=True)
    both = plan(Impairment(delay_us=10, duplicate=0.1, rate_bps=10**6), NO_NETEM)
    assert both == Plan(rate="tbf", bpf=True, relay=True)
    assert both.describe() == "tbf rate + tc-bpf loss/duplicate + relay delay"


def test_a_declared_zero_delay_keeps_the_relay() -> None:
    assert plan(parse_impairment("i", {"delay": "0ms"}), NO_NETEM).relay


def test_fallbacks_htb_and_relay_loss() -> None:
    feats = Features(htb=True, packet=True)
    assert plan(Impairment(rate_bps=10**6), feats) == Plan(rate="htb")
    got = plan(Impairment(loss=0.1), feats)
    assert got == Plan(relay=True, relay_loss=True)
    assert got.describe() == "relay delay+loss"


@pytest.mark.parametrize(
    ("imp", "feats", "words"),
    [
        (Impairment(rate_bps=10**6), Features(packet=True), "sch_tbf or sch_htb"),
        (Impairment(delay_us=5), Features(tbf=True), "delay/jitter/reorder needs"),
        (Impairment(loss=0.5), Features(), "clsact with BPF or AF_PACKET"),
    ],
)
def test_no_path_names_what_is_missing(imp: Impairment, feats: Features, words: str) -> None:
    with pytest.raises(MissingFeature, match=words):
        plan(imp, feats)


def test_netem_options() -> None:
    opts = tc.netem_options(Impairment(20_000, 2000, 0.01, 0.005, 0.05, 10**7))
    assert opts == {
        "delay": 20_000,
        "jitter": 2000,
        "limit": tc.NETEM_LIMIT,
        "loss": 1.0,
        "duplicate": 0.5,
        "prob_reorder": 5.0,
        "rate": "10000000bit",
    }


def test_tbf_burst_covers_three_frames_or_four_ms() -> None:
    assert tc.tbf_options(Impairment(rate_bps=10**6))["burst"] == 3 * 1514
    assert tc.tbf_options(Impairment(rate_bps=10**9))["burst"] == 10**9 // 8 // 250


# -- the relay's delay line (sans-IO) ---------------------------------------------------


def test_delay_line_holds_frames_for_the_delay() -> None:
    line = DelayLine(Direction(delay_us=20_000))
    line.push(1.0, b"x")
    assert line.pop_due(1.019) == []
    assert line.next_due() == pytest.approx(1.02)
    assert line.pop_due(1.02) == [b"x"]
    assert len(line) == 0


def test_jitter_is_uniform_around_the_delay_and_lets_frames_overtake() -> None:
    line = DelayLine(Direction(delay_us=20_000, jitter_us=5000), random.Random(1))
    for i in range(2000):
        line.push(0.0, i.to_bytes(2, "big"))
    dues = sorted(d for d, _, _ in line._heap)
    assert 0.015 <= dues[0] < 0.0152
    assert 0.0248 < dues[-1] <= 0.025
    order = [int.from_bytes(f, "big") for f in line.pop_due(1.0)]
    assert order != sorted(order)


def test_reorder_sends_that_fraction_at_once() -> None:
    line = DelayLine(Direction(delay_us=10_000, reorder=0.25), random.Random(2))
    for i in range(4000):
        line.push(0.0, bytes([i % 256]))
    at_once = len(line.pop_due(0.0))
    assert 900 <= at_once <= 1100
    assert len(line.pop_due(0.01)) == 4000 - at_once


def test_relay_loss_and_duplicate() -> None:
    line = DelayLine(Direction(loss=0.5, duplicate=0.5), random.Random(3))
    copies = [line.push(0.0, b"x") for _ in range(4000)]
    assert 1850 <= copies.count(0) <= 2150
    assert 900 <= copies.count(2) <= 1100


def test_relay_direction_ignores_loss_unless_asked() -> None:
    raw: dict[str, object] = {"delay_us": 5, "loss": 0.5, "duplicate": 0.1}
    assert Direction.from_dict(raw, with_loss=False) == Direction(delay_us=5)
    assert Direction.from_dict(raw, with_loss=True).loss == 0.5
