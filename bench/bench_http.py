"""HTTP requests per second with wrk: ``rawstack http serve`` vs nginx, vs the fastest
Python servers a user would pick instead (uvicorn with httptools on a bare ASGI app, gunicorn
with its sync worker on a bare WSGI app), and vs ``http.server``.

Each server runs alone in node b of a fresh pair and serves the same 20-byte page
(``<h1>hello world</h1>``, the page of the Go HTTP server rawstack grew from) on ``/``; wrk
runs in node a with keep-alive. The servers take turns on the same pair, so they see the same
veth and the same wrk. A server that is not installed or does not start is "not measured",
with the reason; the others are still measured.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from rawstack_harness.backends.linux.nodes import LinuxNode
from rawstack_harness.clients import rawstack_argv

from bench import http_apps
from bench.context import Context
from bench.netns import B_ADDR, BenchError, harness_pair, start_ready, wait_tcp
from bench.parse import WrkResult, parse_wrk
from bench.report import Row, Section, not_measured

TITLE = "HTTP requests per second (wrk, keep-alive)"
GROUP = "Peers"
METRICS = (
    "rawstack http serve",
    "nginx, 1 worker",
    "uvicorn + httptools, 1 worker",
    "gunicorn sync, 1 worker",
    "python -m http.server",
)
PYTHON_SERVERS = METRICS[2:4]  # the ones rawstack must be ahead of
PAGE = http_apps.PAGE
PORT = 8080
RATIO_GOAL = 0.6  # of nginx's requests per second
APPS_DIR = str(Path(http_apps.__file__).resolve().parent)

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/html;
    keepalive_requests 1000000;
    server {{
        listen {port};
        root {d}/www;
        index index.html;
    }}
}}
"""


def nginx_conf(directory: Path, port: int) -> str:
    """A minimal single-process nginx serving ``directory``/www, all state in ``directory``."""
    return NGINX_CONF.format(d=directory, port=port)


def _wrk(ctx: Context, client: LinuxNode) -> tuple[list[str], WrkResult]:
    o = ctx.opts
    argv = [
        "wrk",
        f"-t{o.http_threads}",
        f"-c{o.http_connections}",
        f"-d{o.http_seconds:g}s",
        "--latency",
        f"http://{B_ADDR}:{PORT}/",
    ]
    done = client.run(argv, capture_output=True, text=True, timeout=o.http_seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed: {(done.stderr or done.stdout).strip()[-200:]}")
    return argv, parse_wrk(done.stdout)


def _missing(*modules: str) -> str:
    """Why a Python server cannot run here ("" if it can): the first module not installed."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[bench]')"
    return ""


def uvicorn_loop() -> str:
    """uvloop when it is installed, else asyncio's own loop (the note says which)."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _servers(ctx: Context) -> list[tuple[str, list[str], bool, str]]:
    """(name, argv, prints a ready line, why it cannot run or "") for each server."""
    www = ctx.path("www")
    # Its defaults as shipped (HTTP/1.0, a connection per request): with --protocol HTTP/1.1
    # it writes headers and body separately and stalls on delayed ACKs (~40 ms a request).
    http_server = [sys.executable, "-m", "http.server", "--bind", B_ADDR, "--directory", str(www)]
    uvicorn = [
        *(sys.executable, "-m", "uvicorn", "--app-dir", APPS_DIR),
        *("--host", B_ADDR, "--port", str(PORT), "--workers", "1"),
        *("--http", "httptools", "--loop", uvicorn_loop(), "--lifespan", "off"),
        *("--no-access-log", "--log-level", "warning", "http_apps:asgi"),
    ]
    gunicorn = [
        *(sys.executable, "-m", "gunicorn", "--pythonpath", APPS_DIR),
        *("--bind", f"{B_ADDR}:{PORT}", "--workers", "1", "--worker-class", "sync"),
        *("--log-level", "warning", "http_apps:wsgi"),
    ]
    nginx = [
        *("nginx", "-p", str(ctx.tmp), "-e", str(ctx.path("nginx-error.log"))),
        *("-c", str(ctx.path("nginx.conf"))),
    ]
    return [
        (METRICS[0], rawstack_argv("http", "serve", "--port", str(PORT)), True, ""),
        (METRICS[1], nginx, False, ""),
        (METRICS[2], uvicorn, False, _missing("uvicorn", "httptools")),
        (METRICS[3], gunicorn, False, _missing("gunicorn")),
        (METRICS[4], [*http_server, str(PORT)], False, ""),
    ]


def run(ctx: Context) -> Section:
    www = ctx.path("www")
    www.mkdir(exist_ok=True)
    (www / "index.html").write_bytes(PAGE)
    ctx.path("nginx.conf").write_text(nginx_conf(ctx.tmp, PORT), encoding="utf-8")
    results: dict[str, WrkResult] = {}
    failures: dict[str, str] = {}
    argv: list[str] = []
    with harness_pair(ctx.run, "http") as net:
        client, server = net["a"], net["b"]
        for name, cmd, has_ready_line, missing in _servers(ctx):
            if missing:
                failures[name] = missing
                continue
            try:
                log = ctx.path(f"http-{len(results) + len(failures)}.log")
                if has_ready_line:
                    start_ready(server, cmd, ["http"], log)
                else:
                    with open(log, "ab") as err:
                        proc = server.popen(cmd, stdout=err, stderr=err)
                    wait_tcp(client, B_ADDR, PORT, proc, timeout=20)
                argv, results[name] = _wrk(ctx, client)
            except (BenchError, OSError) as exc:
                failures[name] = str(exc)
            finally:
                server.stop_processes()
    return Section(TITLE, GROUP, _rows(results, failures), _notes(results, argv))


def _rows(results: dict[str, WrkResult], failures: dict[str, str]) -> list[Row]:
    ours, nginx = results.get(METRICS[0]), results.get(METRICS[1])
    rows: list[Row] = []
    goal = f">= {RATIO_GOAL}x nginx"
    if ours is None:
        rows.append(not_measured(METRICS[0], failures.get(METRICS[0], "no result"), goal=goal))
    elif nginx is None:
        rows.append(Row(METRICS[0], ours.rps, "req/s", "nginx not measured", goal))
    else:
        share = ours.rps / nginx.rps
        rows.append(
            Row(
                METRICS[0],
                ours.rps,
                "req/s",
                f"nginx {nginx.rps:,.0f} req/s: ours = {share:.2f}x",
                goal,
                passed=share >= RATIO_GOAL,
            )
        )
    for name in METRICS[1:]:
        res = results.get(name)
        # rawstack must be ahead of each Python server a user would pick instead.
        goal = "rawstack ahead" if name in PYTHON_SERVERS else ""
        if res is None:
            rows.append(not_measured(name, failures.get(name, "no result"), goal=goal))
            continue
        base = f"rawstack = {ours.rps / res.rps:.2f}x this" if ours else "rawstack not measured"
        passed = (ours.rps > res.rps) if goal and ours else None
        rows.append(Row(name, res.rps, "req/s", base, goal, passed=passed))
    return rows


def _notes(results: dict[str, WrkResult], argv: list[str]) -> list[str]:
    notes = [
        f"Client: `{' '.join(argv)}` in node a; each server alone in node b (10.0.0.2), "
        "one after the other on the same veth pair."
        if argv
        else "wrk never ran.",
        "nginx: `daemon off; master_process off; worker_processes 1;` (one process), "
        "`access_log off`, `keepalive_requests 1000000`, serving the same 20-byte index.html. "
        f"uvicorn: `--http httptools --loop {uvicorn_loop()} --workers 1 --lifespan off "
        "--no-access-log` serving a bare ASGI app (`bench/http_apps.py`, no framework) with "
        "the same page and Content-Type. gunicorn: `--workers 1 --worker-class sync` serving "
        "a bare WSGI app with the same page; its sync worker closes the connection after "
        "each response (it does not keep connections alive), so wrk reconnects for every "
        "request, as the worker is designed to be used (behind a buffering proxy).",
        "`python -m http.server` runs as shipped (HTTP/1.0, so wrk reconnects for every "
        "request); with `--protocol HTTP/1.1` it is slower still, because it writes headers "
        "and body separately and waits on delayed ACKs.",
    ]
    for name, res in results.items():
        extra = ""
        if res.socket_errors or res.non_2xx:
            extra = f"; {res.socket_errors} socket errors, {res.non_2xx} non-2xx responses"
        p50 = f"{res.p50_ms:.2f}" if res.p50_ms is not None else "?"
        p99 = f"{res.p99_ms:.2f}" if res.p99_ms is not None else "?"
        notes.append(f"{name}: {res.requests} requests, latency p50 {p50} ms, p99 {p99} ms{extra}.")
    return notes
