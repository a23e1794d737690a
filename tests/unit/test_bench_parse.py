"""bench.parse and the other pure helpers: tool output, /proc files, small calculations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.bench_http import nginx_conf
from bench.bench_scale import KERNEL_FIELDS, kernel_growth, window_p50
from bench.machine import cpu_model, meminfo
from bench.parse import (
    duration_ms,
    failed_tests,
    parse_ping_times,
    parse_pytest_summary,
    parse_smaps_rollup,
    parse_wrk,
)

WRK = """\
Running 5s test @ http://10.0.0.2:8080/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.55ms  812.00us  12.01ms   88.20%
    Req/Sec     8.40k   410.22     9.01k    70.00%
  Latency Distribution
     50%    1.41ms
     75%    1.80ms
     90%    2.30ms
     99%  812.00us
  83640 requests in 5.00s, 10.21MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  16727.98
Transfer/sec:      2.04MB
"""


def test_wrk() -> None:
    r = parse_wrk(WRK)
    assert r.requests == 83640
    assert r.rps == pytest.approx(16727.98)
    assert r.p50_ms == pytest.approx(1.41)
    assert r.p99_ms == pytest.approx(0.812)
    assert (r.socket_errors, r.non_2xx) == (6, 4)


def test_wrk_without_latency_or_errors() -> None:
    r = parse_wrk("  10 requests in 1.00s, 1KB read\nRequests/sec:     10.00\n")
    assert (r.requests, r.rps, r.p50_ms, r.socket_errors, r.non_2xx) == (10, 10.0, None, 0, 0)
    with pytest.raises(ValueError, match="Requests/sec"):
        parse_wrk("unable to connect to 10.0.0.2:8080 Connection refused\n")


@pytest.mark.parametrize(
    ("text", "ms"), [("812.00us", 0.812), ("1.5ms", 1.5), ("2.00s", 2000.0), ("1.00m", 60000.0)]
)
def test_duration_ms(text: str, ms: float) -> None:
    assert duration_ms(text) == pytest.approx(ms)


def test_duration_ms_rejects_junk() -> None:
    with pytest.raises(ValueError, match="not a wrk duration"):
        duration_ms("fast")


def test_ping_times() -> None:
    text = """PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.
64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.045 ms
64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=12.3 ms
64 bytes from 10.0.0.2: icmp_seq=3 ttl=64 time=101 ms (DUP!)

--- 10.0.0.2 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 20ms
rtt min/avg/max/mdev = 0.045/37.782/101.000/44.978 ms
"""
    assert parse_ping_times(text) == [0.045, 12.3, 101.0]
    assert parse_ping_times("Request timeout for icmp_seq 0\n") == []


def test_smaps_rollup() -> None:
    text = """55d0c8a6f000-7ffd5b3e1000 ---p 00000000 00:00 0  [rollup]
Rss:               11604 kB
Pss:                5123 kB
Pss_Anon:           3000 kB
Shared_Clean:       6000 kB
"""
    fields = parse_smaps_rollup(text)
    assert (fields["Rss"], fields["Pss"], fields["Pss_Anon"]) == (11604, 5123, 3000)


def test_pytest_summary() -> None:
    out = "....F.s\nFAILED tests/x.py::t\n1 failed, 5 passed, 1 skipped, 2 warnings in 9.12s\n"
    assert parse_pytest_summary(out) == {"failed": 1, "passed": 5, "skipped": 1, "warnings": 2}
    assert parse_pytest_summary("= 3 passed, 1 error in 1.00s =") == {"passed": 3, "errors": 1}
    assert parse_pytest_summary("no tests ran") == {}


def test_failed_tests_are_named() -> None:
    out = (
        "=== short test summary info ===\n"
        "SKIPPED [1] tests/a.py:3: no root\n"
        "FAILED tests/x.py::test_one[relay] - AssertionError: 1999 != 2000\n"
        "ERROR tests/y.py::test_two - OSError\n"
        "FAILED at the summary line means nothing\n"
        "1 failed, 1 error, 5 passed in 9.12s\n"
    )
    assert failed_tests(out) == ["tests/x.py::test_one[relay]", "tests/y.py::test_two"]


def test_cpu_model_and_meminfo() -> None:
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert cpu_model("Hardware\t: BCM2835\n") == "BCM2835"
    mem = meminfo("MemTotal:       24684000 kB\nMemAvailable:   100 kB\nHugePages_Total:       0\n")
    assert mem == {"MemTotal": 24684000, "MemAvailable": 100, "HugePages_Total": 0}


def test_kernel_growth_and_window() -> None:
    before = dict.fromkeys(KERNEL_FIELDS, 100)
    after = {**before, "Slab": 1124, "PageTables": 90, "MemFree": 5}
    growth = kernel_growth(before, after)
    assert growth["Slab"] == 1024
    assert growth["PageTables"] == -10
    assert "MemFree" not in growth
    samples = [100.0, 10.0, 12.0, 11.0, 50.0, 13.0]
    assert window_p50(samples, 1) == 100.0
    assert window_p50(samples, 6) == 12.0  # median of pairs 2..6


def test_nginx_conf_keeps_everything_in_the_temp_dir(tmp_path: Path) -> None:
    conf = nginx_conf(tmp_path, 8081)
    assert "master_process off;" in conf
    assert "worker_processes 1;" in conf
    assert "listen 8081;" in conf
    assert f"root {tmp_path}/www;" in conf
    for line in conf.splitlines():
        if line.strip().startswith(("pid ", "error_log", "client_body_temp_path")):
            assert str(tmp_path) in line


def test_tests_run_ignores_warnings() -> None:
    from bench.bench_suite import tests_run

    assert tests_run({"passed": 5, "failed": 1, "warnings": 3, "deselected": 2}) == 6


SMAPS = """\
55d0c0a00000-55d0c0a01000 rw-p 00002000 fe:00 1234                       /usr/bin/python3.11
Size:                  4 kB
Private_Dirty:         4 kB
55d0c1000000-55d0c1200000 rw-p 00000000 00:00 0                          [heap]
Size:               2048 kB
Private_Clean:        12 kB
Private_Dirty:       900 kB
7f0000000000-7f0000400000 rw-p 00000000 00:00 0
Size:               4096 kB
Private_Dirty:      3000 kB
7f0000400000-7f0000500000 rw-p 00390000 fe:00 99   /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0
Private_Dirty:       500 kB
7f0000600000-7f0000601000 rw-s 00000000 00:01 7    /memfd:peer (deleted)
Private_Dirty:         8 kB
VmFlags: rd wr sh mr mw me ms sd
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Private_Dirty:        16 kB
"""


def test_private_dirty_is_summed_by_kind_of_mapping() -> None:
    from bench.parse import private_dirty_by_mapping

    found = private_dirty_by_mapping(SMAPS)
    assert found == {"anonymous": 3000, "[heap]": 900, "libpython": 500, "other": 28}
    assert private_dirty_by_mapping("") == dict.fromkeys(found, 0)


def test_phase_seconds_adds_up_each_phase() -> None:
    from bench.parse import phase_seconds

    lines = [
        '["t.py::a", "setup", 0.004]',
        '["t.py::a", "call", 1.5]',
        '["t.py::a", "teardown", 0.0015]',
        "",
        '["t.py::b", "setup", 0.25]',
        '["t.py::b", "call", 0.5]',
        '["t.py::b", "teardown", 0.125]',
    ]
    found = phase_seconds("\n".join(lines) + "\n")
    assert found == pytest.approx({"setup": 0.254, "call": 2.0, "teardown": 0.1265})


def test_suite_durations_plugin_records_each_phase_once(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\n")
    out = tmp_path / "d.jsonl"
    result = pytester.runpytest("-p", "bench.suite_durations", f"--bench-durations={out}")
    result.assert_outcomes(passed=2)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r[0].rsplit("::")[-1], r[1]) for r in rows] == [
        (name, phase) for name in ("test_a", "test_b") for phase in ("setup", "call", "teardown")
    ]
    assert all(isinstance(r[2], float) and r[2] >= 0 for r in rows)
    # Loaded without the option (or in an xdist worker), it records nothing.
    pytester.runpytest("-p", "bench.suite_durations").assert_outcomes(passed=2)
    assert len(out.read_text().splitlines()) == 6


def test_suite_durations_plugin_leaves_recording_to_the_xdist_controller(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makeconftest(
        "import pytest\n"
        "@pytest.hookimpl(tryfirst=True)\n"
        "def pytest_configure(config):\n"
        "    config.workerinput = {}  # what xdist gives a worker\n"
    )
    pytester.makepyfile("def test_a(): pass\n")
    out = tmp_path / "d.jsonl"
    result = pytester.runpytest("-p", "bench.suite_durations", f"--bench-durations={out}")
    result.assert_outcomes(passed=1)
    assert not out.exists()
