"""The review station's gate and routes: token, cookie, Host, CSRF, ids not paths, escaping; and the real server."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.helpers import digit_png, result_rows
from tests.reviewing import ReviewServer, open_desk, review_config, send_to_review
from watcher.review.app import COOKIE, create_app, csrf_token
from watcher.review.decide import Desk
from watcher.service.config import Config

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "the-token"
CSRF = {"X-CSRF-Token": csrf_token(TOKEN)}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return review_config(tmp_path)


@pytest.fixture
def desk(config: Config) -> Iterator[Desk]:
    opened = open_desk(config, reviewer="<b>ann</b>")
    yield opened
    opened.close()


def client_for(desk: Desk, *, host: str = "127.0.0.1:8765", given_host: str = "127.0.0.1") -> TestClient:
    app = create_app(
        desk=desk,
        queue=desk.queue,
        forms=desk.forms,
        token=TOKEN,
        hosts={"127.0.0.1", "localhost", given_host},
        threshold=0.9,
        reviewer="<b>ann</b>",
    )
    return TestClient(app, base_url=f"http://{host}")


@pytest.fixture
def signed_in(desk: Desk) -> TestClient:
    client = client_for(desk)
    assert client.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
    return client


def test_without_the_token_everything_is_refused(config: Config, desk: Desk) -> None:
    send_to_review(config, "a.png", digit_png())
    (item,) = desk.queue.items()
    client = client_for(desk)
    for path in ("/", "/api/queue", f"/api/items/{item.id}/image", "/static/review.js", "/?token=wrong"):
        assert client.get(path).status_code == 403, path
    client.cookies.set(COOKIE, "wrong")
    assert client.get("/api/queue").status_code == 403
    assert client.post(f"/api/items/{item.id}/decide", json={"value": ""}, headers=CSRF).status_code == 403
    assert len(result_rows(config.paths.results)) == 1


def test_the_token_becomes_an_http_only_strict_cookie_and_leaves_the_address(desk: Desk) -> None:
    client = client_for(desk)
    response = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert client.get("/").status_code == 200


def test_another_host_name_is_refused_even_with_the_cookie(signed_in: TestClient) -> None:
    # DNS rebinding: evil.example resolved to 127.0.0.1 reaches the port, but names its own host.
    assert signed_in.get("/api/queue", headers={"host": "evil.example:8765"}).status_code == 403
    assert signed_in.get("/api/queue", headers={"host": "localhost:8765"}).status_code == 200
    assert signed_in.get("/api/queue", headers={"host": "[::1]:8765"}).status_code == 403
    for malformed in ("127.0.0.1:8765@evil.example", "127.0.0.1:x", "127.0.0.1:80:80", ""):
        assert signed_in.get("/api/queue", headers={"host": malformed}).status_code == 403, malformed
    assert signed_in.get("/api/queue", headers={"host": "LOCALHOST"}).status_code == 200


def test_the_host_given_with_host_is_let_in(desk: Desk) -> None:
    client = client_for(desk, host="192.0.2.7:8765", given_host="192.0.2.7")
    assert client.get(f"/?token={TOKEN}").status_code == 200


def test_decisions_are_posts_with_the_csrf_token(config: Config, desk: Desk, signed_in: TestClient) -> None:
    send_to_review(config, "a.png", digit_png())
    (item,) = desk.queue.items()
    decide = f"/api/items/{item.id}/decide"
    assert signed_in.get(decide).status_code == 405
    assert signed_in.post(decide, json={"value": ""}).status_code == 403
    assert signed_in.post(decide, json={"value": ""}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert signed_in.post("/api/undo", json={}).status_code == 403
    assert len(result_rows(config.paths.results)) == 1
    answer = signed_in.post(decide, json={"value": "1"}, headers=CSRF)
    assert answer.status_code == 200
    assert answer.json() == {"status": "corrected", "prediction": "1"}
    again = signed_in.post(decide, json={"value": ""}, headers=CSRF)
    assert (again.status_code, again.json()) == (409, {"error": "already decided"})
    assert len(result_rows(config.paths.results)) == 2


def test_a_value_must_be_digits(config: Config, desk: Desk, signed_in: TestClient) -> None:
    send_to_review(config, "a.png", digit_png())
    (item,) = desk.queue.items()
    for body in ({"value": "7a"}, {"value": 7}, {}, ["7"], {"value": "1" * 65}):
        assert signed_in.post(f"/api/items/{item.id}/decide", json=body, headers=CSRF).status_code == 400, body
    assert len(result_rows(config.paths.results)) == 1


def test_undo_through_the_app(config: Config, desk: Desk, signed_in: TestClient) -> None:
    send_to_review(config, "a.png", digit_png())
    (item,) = desk.queue.items()
    assert signed_in.post(f"/api/items/{item.id}/decide", json={"value": ""}, headers=CSRF).status_code == 200
    undone = signed_in.post("/api/undo", json={}, headers=CSRF)
    assert undone.status_code == 200
    (back,) = signed_in.get("/api/queue").json()["items"]
    assert undone.json() == {"id": back["id"], "prediction": "7"}
    assert signed_in.post("/api/undo", json={}, headers=CSRF).status_code == 409


def test_items_are_named_by_opaque_ids_and_images_served_only_from_review(
    config: Config, desk: Desk, signed_in: TestClient
) -> None:
    send_to_review(config, "a.png", digit_png(rows=3))
    (config.root / "secret.png").write_bytes(b"not for the browser")
    assert config.paths.review is not None
    (config.paths.review / "link.png").symlink_to(config.root / "secret.png")
    (shown,) = signed_in.get("/api/queue").json()["items"]
    assert re.fullmatch(r"[0-9a-f]{24}", shown["id"])
    assert "a.png" not in shown["id"]
    image = signed_in.get(f"/api/items/{shown['id']}/image")
    assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/png", digit_png(rows=3))
    for path in ("a.png", "..%2Fsecret.png", "link.png", "0" * 24):
        assert signed_in.get(f"/api/items/{path}/image").status_code == 404, path


def test_a_tiff_in_review_is_shown_as_png(config: Config, desk: Desk, signed_in: TestClient) -> None:
    import cv2
    import numpy as np

    send_to_review(config, "a.tif", cv2.imencode(".tif", np.full((8, 8), 200, np.uint8))[1].tobytes())
    (shown,) = signed_in.get("/api/queue").json()["items"]
    image = signed_in.get(f"/api/items/{shown['id']}/image")
    assert image.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (8, 8)


def test_names_and_values_go_to_the_page_as_data_and_the_page_escapes_its_own(
    config: Config, desk: Desk, signed_in: TestClient
) -> None:
    hostile = "<script>alert(1)</script>.png"
    send_to_review(config, "page.png", digit_png(), file=hostile, page=2)
    (shown,) = signed_in.get("/api/queue").json()["items"]
    assert shown["file"] == hostile
    assert shown["one_of_pages"] is True
    page = signed_in.get("/")
    assert "<b>ann</b>" not in page.text
    assert "&lt;b&gt;ann&lt;/b&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    script = signed_in.get("/static/review.js").text
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script


def test_review_off_is_a_config_error_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  path: models/fake\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "review", "--config", str(config), "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "paths.review: not set" in result.stderr


def request(port: int, path: str, *, host: str | None = None, cookie: str | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if cookie:
        headers["Cookie"] = cookie
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.mark.slow
def test_the_real_server_prints_its_url_and_keeps_its_gate(config: Config) -> None:
    send_to_review(config, "a.png", digit_png())
    server = ReviewServer(config.source, reviewer="t")
    try:
        token = server.url.split("token=")[1]
        assert request(server.port, "/").status == 403
        assert request(server.port, f"/?token={token}", host=f"evil.example:{server.port}").status == 403
        welcome = request(server.port, f"/?token={token}")
        assert welcome.status == 303
        cookie = welcome.getheader("set-cookie", "").split(";")[0]
        assert request(server.port, "/api/queue", cookie=cookie).status == 200
    finally:
        assert server.stop() == 0
    assert config.paths.review is not None
    assert list((config.paths.review / ".digit-watcher").iterdir()) == []
