"""The review station's routes, behind one gate: a known Host, the access token's cookie, a CSRF token on POSTs."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

import cv2
import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from watcher.review.decide import AlreadyDecided, Desk, NothingToUndo
from watcher.review.forms import FormPages, read_plain
from watcher.review.queue import Item, Queue

HERE = Path(__file__).parent
COOKIE = "digit_watcher_review"
CSRF_HEADER = "x-csrf-token"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
MAX_VALUE_DIGITS = 64
ITEM_ID = re.compile(r"[0-9a-f]{24}")  # an item's id as Queue makes it: 12 bytes of keyed BLAKE2b, in hex
# What a browser shows itself; any other kind of scan (a TIFF, a PDF) is re-encoded as PNG to be shown.
SHOWN_AS_IS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
SECURITY_HEADERS = {
    # Only this app's own script, styles and images; no framing; the token never leaks through a Referer.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def csrf_token(token: str) -> str:
    """The token a page's POSTs carry in a header, derived from the access token so it is the same for all tabs."""
    return hmac.new(token.encode(), b"csrf", hashlib.sha256).hexdigest()


HOST_HEADER = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\](?::\d+)?|(?P<name>[^:\[\]]+)(?::\d+)?")


def host_name(header: str) -> str:
    """The host part of a Host header: `127.0.0.1:8765` -> `127.0.0.1`, `[::1]:8765` -> `::1`; empty if malformed."""
    found = HOST_HEADER.fullmatch(header)
    return (found["v6"] or found["name"]).lower() if found else ""


def same(given: str, wanted: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), wanted.encode())


class Gate(BaseHTTPMiddleware):
    """Refuse (403) a request to another host name (DNS rebinding), without the token, or a POST without CSRF."""

    def __init__(self, app: Any, *, token: str, hosts: Collection[str]) -> None:
        super().__init__(app)
        self.token = token
        self.csrf = csrf_token(token)
        self.hosts = hosts

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await self._answer(request, call_next)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _answer(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if host_name(request.headers.get("host", "")) not in self.hosts:
            return PlainTextResponse("refused: unknown host name", status_code=403)
        given = request.query_params.get("token")
        if given is not None and same(given, self.token) and request.method in ("GET", "HEAD"):
            # The token becomes a cookie and leaves the address bar (and the history) at once.
            response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
            return response
        if not same(request.cookies.get(COOKIE, ""), self.token):
            return PlainTextResponse("refused: open the link `digit-watcher review` printed", status_code=403)
        if request.method not in ("GET", "HEAD") and not same(request.headers.get(CSRF_HEADER, ""), self.csrf):
            return PlainTextResponse("refused: no CSRF token", status_code=403)
        return await call_next(request)


def create_app(
    *,
    desk: Desk,
    queue: Queue,
    forms: FormPages,
    token: str,
    hosts: Collection[str],
    threshold: float,
    reviewer: str,
) -> Starlette:
    """The station: its page, the queue's routes and the decisions' routes, all behind the Gate."""
    return Starlette(
        routes=[
            _page_route(token=token, reviewer=reviewer),
            *_queue_routes(queue, forms, threshold=threshold, reviewer=reviewer),
            *_decision_routes(desk, queue),
            Mount("/static", StaticFiles(directory=HERE / "static")),
        ],
        middleware=[Middleware(Gate, token=token, hosts=hosts)],
    )


def _page_route(*, token: str, reviewer: str) -> Route:
    """The station's one page, carrying the CSRF token its script sends with every POST."""
    pages = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )

    def index(request: Request) -> Response:
        page = pages.get_template("index.html").render(csrf=csrf_token(token), reviewer=reviewer)
        return HTMLResponse(page)

    return Route("/", index)


def _queue_routes(queue: Queue, forms: FormPages, *, threshold: float, reviewer: str) -> list[Route]:
    """What waits for a person: the queue, and each item's picture and whole page."""

    def waiting(request: Request) -> Response:
        return JSONResponse({"reviewer": reviewer, "items": [_shown(item, threshold) for item in queue.items()]})

    def waiting_item(request: Request) -> Item | None:
        wanted = request.path_params["item"]
        return queue.find(wanted) if ITEM_ID.fullmatch(wanted) else None

    def page(request: Request) -> Response:
        item = waiting_item(request)
        return _picture(_page_picture(forms, queue.review / item.name) if item else None)

    def image(request: Request) -> Response:
        """What the person reads: a form field's part of the page, upright; else the page."""
        item = waiting_item(request)
        if item is None:
            return _picture(None)
        path = queue.review / item.name
        field = forms.field_picture(path, item.row, list(queue.form_page(item.row))) if item.row.field else None
        return _picture(("image/png", field) if field is not None else _page_picture(forms, path))

    return [
        Route("/api/queue", waiting),
        Route("/api/items/{item}/image", image),
        Route("/api/items/{item}/page", page),
    ]


def _decision_routes(desk: Desk, queue: Queue) -> list[Route]:
    """What a person does: decide an item's value, and undo the last decision."""

    async def decide(request: Request) -> Response:
        wanted = request.path_params["item"]
        value = await _value(request)
        if value is None:
            return JSONResponse({"error": f"a value is 0 to {MAX_VALUE_DIGITS} digits"}, status_code=400)
        if not ITEM_ID.fullmatch(wanted):
            return JSONResponse({"error": "already decided"}, status_code=409)
        # Off the event loop (fsyncs, renames), so the pages polling meanwhile are answered.
        try:
            outcome = await run_in_threadpool(desk.decide, wanted, value)
        except AlreadyDecided as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"status": outcome.status, "prediction": outcome.prediction})

    async def undo(request: Request) -> Response:
        try:
            outcome = await run_in_threadpool(desk.undo)
        except NothingToUndo as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        back = next((item for item in queue.items() if item.name == outcome.name), None)
        return JSONResponse({"id": back.id if back else None, "prediction": outcome.prediction})

    return [
        Route("/api/items/{item}/decide", decide, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
    ]


def _shown(item: Item, threshold: float) -> dict[str, str | bool]:
    """An item as the page shows it: named by id; its name and values are text for the page to escape."""
    row = item.row
    return {
        "id": item.id,
        "file": row.file,
        "page": row.page,
        "one_of_pages": item.name != row.file,  # a page's picture: its page number is shown, even page 1
        "field": row.field,  # the image is then the field's part of the page; the page itself is shown on demand
        "prediction": row.prediction,
        "confidence": row.confidence,
        "top3": row.top3,
        "model": row.model,
        "why": item.why(threshold),
        "time": row.time,
    }


async def _value(request: Request) -> str | None:
    """The digits typed (empty: accept the reading); None when the body is not `{"value": "<digits>"}`."""
    try:
        body = await request.json()
    except ValueError:
        return None
    value = body.get("value") if isinstance(body, dict) else None
    if not isinstance(value, str) or not re.fullmatch(rf"[0-9]{{0,{MAX_VALUE_DIGITS}}}", value):
        return None
    return value


def _page_picture(forms: FormPages, path: Path) -> tuple[str, bytes | None] | None:
    """A review file's page as the browser can show it: as it is, or re-encoded as PNG (a TIFF, BMP or PDF page);
    None when it is gone, (kind, None) when it cannot be shown."""
    kind = SHOWN_AS_IS.get(os.path.splitext(path.name)[1].lower())
    if kind is not None:
        data = read_plain(path)
        return None if data is None else (kind, data)
    if not os.path.lexists(path):
        return None
    image = forms.first_page(path)
    if image is None:
        return ("image/png", None)
    ok, encoded = cv2.imencode(".png", image)
    return ("image/png", encoded.tobytes() if ok else None)


def _picture(shown: tuple[str, bytes | None] | None) -> Response:
    if shown is None:
        return PlainTextResponse("no such item waiting", status_code=404)
    kind, data = shown
    if data is None:
        return PlainTextResponse("this scan cannot be shown as a picture", status_code=415)
    # An id names one reading of one file: its picture never changes, so the grid need not fetch it twice.
    return Response(data, media_type=kind, headers={"cache-control": "private, max-age=3600, immutable"})
