"""bench.bench_http: the rows' verdicts against nginx and the Python servers, a server that
cannot run, and the bare apps serving the same page as rawstack."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

from bench import bench_http, http_apps
from bench.bench_http import METRICS, PYTHON_SERVERS, _missing, _rows
from bench.parse import WrkResult
from rawstack.peers.http_server import HELLO_PAGE, HTML


def _wrk(rps: float) -> WrkResult:
    return WrkResult(int(rps * 5), rps, 0.5, 2.0, 0, 0)


def _verdicts(results: dict[str, WrkResult], failures: dict[str, str]) -> dict[str, str]:
    return {row.metric: row.verdict for row in _rows(results, failures)}


def test_ours_against_nginx_and_each_python_server() -> None:
    uvicorn, gunicorn = PYTHON_SERVERS
    results = {
        METRICS[0]: _wrk(70_000),
        METRICS[1]: _wrk(100_000),  # 0.70x: over the 0.6x goal
        uvicorn: _wrk(80_000),  # ahead of us: a MISS on its row
        gunicorn: _wrk(4_000),
        METRICS[4]: _wrk(1_000),
    }
    verdicts = _verdicts(results, {})
    assert verdicts[METRICS[0]] == "PASS"
    assert verdicts[uvicorn] == "MISS"
    assert verdicts[gunicorn] == "PASS"
    assert verdicts[METRICS[1]] == "no goal set"
    assert verdicts[METRICS[4]] == "no goal set"
    results[METRICS[1]] = _wrk(120_000)  # 0.58x
    assert _verdicts(results, {})[METRICS[0]] == "MISS"


def test_a_server_that_could_not_run_is_not_measured_with_its_reason() -> None:
    uvicorn, gunicorn = PYTHON_SERVERS
    results = {METRICS[0]: _wrk(70_000), METRICS[1]: _wrk(100_000), gunicorn: _wrk(4_000)}
    failures = {uvicorn: "httptools is not installed"}
    rows = {row.metric: row for row in _rows(results, failures)}
    assert rows[uvicorn].verdict == "not measured: httptools is not installed"
    assert rows[uvicorn].goal == "rawstack ahead"
    assert rows[gunicorn].verdict == "PASS"
    assert rows[METRICS[4]].verdict.startswith("not measured")


def test_without_our_figure_no_python_server_row_is_judged() -> None:
    results = {METRICS[1]: _wrk(100_000), PYTHON_SERVERS[0]: _wrk(20_000)}
    verdicts = _verdicts(results, {METRICS[0]: "rawstack died"})
    assert verdicts[METRICS[0]] == "not measured: rawstack died"
    assert verdicts[PYTHON_SERVERS[0]] == "not judged"


def test_missing_names_the_first_absent_module() -> None:
    assert _missing("json", "no_such_module_here", "also_absent") == (
        "no_such_module_here is not installed (pip install -e '.[bench]')"
    )
    assert _missing("json") == ""


def test_uvloop_is_used_when_installed_else_asyncio(monkeypatch: Any) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert bench_http.uvicorn_loop() == "asyncio"
    assert _missing("uvicorn").startswith("uvicorn is not installed")


def test_the_apps_serve_rawstacks_page() -> None:
    assert http_apps.PAGE == HELLO_PAGE
    assert http_apps.CONTENT_TYPE == HTML
    started: list[tuple[str, list[tuple[str, str]]]] = []
    body = b"".join(http_apps.wsgi({}, lambda status, headers: started.append((status, headers))))
    assert body == HELLO_PAGE
    assert started == [("200 OK", [("Content-Type", HTML), ("Content-Length", "20")])]
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(http_apps.asgi({"type": "http"}, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200
    assert sent[0]["headers"] == [(b"content-type", HTML.encode())]
    assert sent[1]["body"] == HELLO_PAGE
    sent.clear()
    asyncio.run(http_apps.asgi({"type": "lifespan"}, receive, send))
    assert sent == []
