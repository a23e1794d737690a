"""The bare applications the HTTP benchmark serves from the Python servers a user would pick
instead of ``rawstack http serve``: the same 20-byte page with the same Content-Type, and
no framework in between, so the figure is the server's own cost.

The servers import this file on its own (``uvicorn --app-dir``, ``gunicorn --pythonpath``),
not as part of the ``bench`` package: it imports nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

PAGE = b"<h1>hello world</h1>"
CONTENT_TYPE = "text/html; charset=utf-8"  # what rawstack http serve sends with the page

_ASGI_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", CONTENT_TYPE.encode("ascii"))],
}
_ASGI_BODY = {"type": "http.response.body", "body": PAGE}


async def asgi(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """ASGI 3: the page for every HTTP request (run with ``--lifespan off``)."""
    if scope["type"] != "http":
        return
    await send(_ASGI_START)
    await send(_ASGI_BODY)


def wsgi(
    environ: dict[str, Any], start_response: Callable[[str, list[tuple[str, str]]], object]
) -> Iterable[bytes]:
    """WSGI (PEP 3333): the page for every request."""
    start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(PAGE)))])
    return [PAGE]
