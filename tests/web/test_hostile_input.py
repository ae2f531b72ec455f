"""The explorer under hostile and malformed input (issue 23), mostly against a real uvicorn
server with raw HTTP requests: notes with Unicode line ends, model text with images, oversized
bodies, bad query values, tokens and cookies, open redirects and cross-origin POSTs."""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest
from starlette.applications import Starlette

from daydreaming_dagster.results.human_ratings import ratings_frame, read_ratings
from daydreaming_dagster.web.app import ExplorerConfig, create_app
from daydreaming_dagster.web.security import (
    ACCESS_COOKIE,
    CSRF_COOKIE,
    CSRF_FIELD,
    MAX_BODY_BYTES,
    Secrets,
)
from tests.web.support import SyntheticCohort, essay_text, serve_in_thread, write_synthetic_cohort

IMAGE_TEXT = "# Pixels\n\n![x](/cohorts/c1?refresh=1&a=1)\n\n![remote](http://127.0.0.1:9/p.png)\n"


def _text(index: int, essay_id: str) -> str:
    return IMAGE_TEXT if index == 0 else essay_text(index, essay_id)


@dataclass
class Server:
    base: str
    app: Starlette
    root: Path
    essays: list[str]
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        """One raw request (path sent as is), with this client's cookies."""
        parts = urlsplit(self.base)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        sent = {"Host": self.host, **(headers or {})}
        if self.cookies and "Cookie" not in sent:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def csrf(self, essay: str) -> str:
        _, _, page = self.request("GET", f"/cohorts/c1/essays/{essay}")
        match = re.search(rf'name="{CSRF_FIELD}" value="([0-9a-f]+)"', page)
        assert match and CSRF_COOKIE in self.cookies
        return match.group(1)

    def rate(self, essay: str, headers: dict[str, str] | None = None, **fields: str) -> tuple[int, dict[str, str], str]:
        form = {"rater": "ada", "score": "5", CSRF_FIELD: self.csrf(essay), **fields}
        return self.request("POST", f"/cohorts/c1/essays/{essay}/rating", urlencode(form).encode("utf-8"),
                            {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})


@pytest.fixture
def cohort(data_root: Path) -> SyntheticCohort:
    return write_synthetic_cohort(data_root, text=_text)


@pytest.fixture
def server(cohort: SyntheticCohort) -> Iterator[Server]:
    app = create_app(ExplorerConfig(data_root=str(cohort.root), secrets=Secrets()))
    with serve_in_thread(app) as base:
        yield Server(base, app, cohort.root, cohort.essays)


# -- 1: notes holding characters str.splitlines treats as line ends -------------------------
def test_a_note_with_unicode_line_ends_is_saved_and_a_rerating_replaces_it(server: Server) -> None:
    essay = server.essays[3]
    note = "first\u2028second\u2029third\x85fourth\x0cfifth\x1c sixth\r\nseventh 🦀"
    status, headers, _ = server.rate(essay, score="2", note=note)
    assert status == 303, headers
    status, _, _ = server.rate(essay, score="8", note=note + " again")
    assert status == 303
    stored = read_ratings(server.root, "c1")
    assert stored.skipped_lines == 0 and [r.score for r in stored.ratings] == [2.0, 8.0]
    frame = ratings_frame(server.root, "c1")  # what the analysis reads
    assert frame.select("essay_gen_id", "score", "note").rows() == [(essay, 8.0, note + " again")]
    _, _, page = server.request("GET", "/cohorts/c1/ratings")
    assert "could not be read" not in page and "seventh 🦀 again" in page


# -- 2: model text makes no request; no GET rebuilds a cohort --------------------------------
def test_images_in_model_text_are_text_and_no_get_rebuilds_the_cohort(server: Server) -> None:
    store = server.app.state.store
    status, headers, page = server.request("GET", f"/cohorts/c1/essays/{server.essays[0]}")
    assert status == 200 and "img-src 'none'" in headers["content-security-policy"]
    assert "<img" not in page and "[image: x &lt;/cohorts/c1?refresh=1&amp;a=1&gt;]" in page
    _, _, compare = server.request("GET", f"/cohorts/c1/compare?essays={server.essays[0]},{server.essays[1]}")
    assert "<img" not in compare
    assert store.builds == 1
    for path in ("/cohorts/c1?refresh=1&a=1", "/cohorts/c1?refresh=1", "/", f"/cohorts/c1/essays/{server.essays[0]}",
                 "/cohorts/c1/ratings", "/cohorts/c1/rate?seed=3&refresh=1"):
        assert server.request("GET", path)[0] == 200, path
    assert store.builds == 1  # only the first request read the cohort

    token = server.csrf(server.essays[0])
    form = {"next": "/cohorts/c1?q=marker3"}
    refused = server.request("POST", "/cohorts/c1/refresh", urlencode(form).encode(),
                             {"Content-Type": "application/x-www-form-urlencoded"})
    assert refused[0] == 403 and store.builds == 1
    status, headers, _ = server.request("POST", "/cohorts/c1/refresh", urlencode({**form, CSRF_FIELD: token}).encode(),
                                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers["location"] == "/cohorts/c1?q=marker3" and store.builds == 2


# -- 3: bodies are capped before they are read ------------------------------------------------
def test_an_oversized_body_is_refused_before_it_is_read(server: Server) -> None:
    token = server.csrf(server.essays[1])
    parts = urlsplit(server.base)
    cookie = "; ".join(f"{k}={v}" for k, v in server.cookies.items())
    path = f"/cohorts/c1/essays/{server.essays[1]}/rating"

    # A 300 MB announced body: refused from the headers alone (nothing of the body is sent).
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    connection.putrequest("POST", path)
    for name, value in (("Host", server.host), ("Cookie", cookie), ("Content-Length", str(300 * 1024 * 1024)),
                        ("Content-Type", "application/x-www-form-urlencoded")):
        connection.putheader(name, value)
    connection.endheaders()
    started = time.monotonic()
    response = connection.getresponse()
    assert response.status == 413 and "256 KiB" in response.read().decode()
    assert time.monotonic() - started < 5
    connection.close()

    # A chunked body with no announced length: cut off once it passes the limit.
    def chunks() -> Iterator[bytes]:
        yield f"{CSRF_FIELD}={token}&rater=ada&score=5&note=".encode()
        for _ in range(16):
            yield b"x" * (MAX_BODY_BYTES // 4)

    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("POST", path, body=chunks(), encode_chunked=True,
                           headers={"Host": server.host, "Cookie": cookie,
                                    "Content-Type": "application/x-www-form-urlencoded"})
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while the client was still sending
    response = connection.getresponse()
    assert response.status == 413
    connection.close()
    assert read_ratings(server.root, "c1").ratings == ()

    # No CSRF cookie at all: refused before the body is read.
    assert server.request("POST", path, b"x" * 1000, {"Cookie": "", "Content-Type": "text/plain"})[0] == 403


# -- 5: bad input is a 400 page saying what was wrong ------------------------------------------
@pytest.mark.parametrize(("query", "message"), [
    ("seed=%C2%B2", "seed '²' is not a whole number"),
    ("seed=" + "9" * 5000, "is not a whole number of 1 to 9 digits"),
    ("seed=-3", "seed '-3' is not a whole number"),
])
def test_a_bad_seed_is_a_400_page(server: Server, query: str, message: str) -> None:
    status, headers, page = server.request("GET", f"/cohorts/c1/rate?{query}")
    assert status == 400 and message in page.replace("&#39;", "'"), page[-600:]
    assert headers["content-type"].startswith("text/html") and 'id="error-detail"' in page


def test_a_non_ascii_csrf_field_is_refused_not_an_error(server: Server) -> None:
    server.csrf(server.essays[2])
    form = urlencode({"rater": "ada", "score": "5", CSRF_FIELD: "é" * 64}).encode()
    status, _, _ = server.request("POST", f"/cohorts/c1/essays/{server.essays[2]}/rating", form,
                                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403


def test_a_malformed_membership_is_a_400_page_naming_the_file(server: Server) -> None:
    (server.root / "cohorts/c1/membership.csv").write_text("stage,gen_id\nwhat,e_1\n", encoding="utf-8")
    status, _, page = server.request("GET", "/cohorts/c1")
    assert status == 400 and "membership.csv line 2: unknown stage" in page.replace("&#39;", "'")
    status, _, page = server.request("GET", "/")  # the cohort list still answers and says why
    assert status == 200 and "unreadable" in page


# -- 5 and 6: remote mode: odd tokens and cookies, and the token redirect --------------------
@pytest.fixture
def remote(cohort: SyntheticCohort) -> Iterator[tuple[Server, str]]:
    secrets = Secrets.for_server(require_token=True)
    app = create_app(ExplorerConfig(data_root=str(cohort.root), secrets=secrets, allow_remote=True))
    with serve_in_thread(app) as base:
        yield Server(base, app, cohort.root, cohort.essays), secrets.access_token or ""


def test_non_ascii_tokens_and_cookies_are_refused_not_errors(remote: tuple[Server, str]) -> None:
    server, _ = remote
    assert server.request("GET", "/?token=" + quote("é" * 32))[0] == 401
    assert server.request("GET", "/", headers={"Cookie": f"{ACCESS_COOKIE}=\xe9\xe9"})[0] == 401
    assert server.request("GET", "/", headers={"Cookie": f"{CSRF_COOKIE}=\xe9; {ACCESS_COOKIE}=x"})[0] == 401


@pytest.mark.parametrize(("path", "location"), [
    ("//evil.example/?token={t}", "/evil.example/"),
    ("//evil.example/?token={t}&q=a&q=b", "/evil.example/?q=a&q=b"),
    ("/\\evil.example/?token={t}", "/evil.example/"),
    ("/cohorts/c1/compare?essays=a&token={t}&essays=b", "/cohorts/c1/compare?essays=a&essays=b"),
    ("/cohorts/c1?q=two%20words&token={t}", "/cohorts/c1?q=two+words"),
])
def test_the_token_redirect_stays_on_this_server_and_keeps_every_parameter(
        remote: tuple[Server, str], path: str, location: str) -> None:
    server, token = remote
    status, headers, _ = server.request("GET", path.format(t=token))
    assert status == 303 and headers["location"] == location
    assert server.cookies[ACCESS_COOKIE] == token


def test_a_non_ascii_cookie_in_local_mode_gets_a_fresh_one(server: Server) -> None:
    status, headers, _ = server.request("GET", "/", headers={"Cookie": f"{CSRF_COOKIE}=\xe9\xe9"})
    assert status == 200 and CSRF_COOKIE in headers.get("set-cookie", "")


# -- 7: the Origin check ---------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},  # same host, another port: another origin
    {"Sec-Fetch-Site": "cross-site"},
])
def test_a_cross_origin_post_is_refused_even_with_the_csrf_pair(server: Server, headers: dict[str, str]) -> None:
    status, _, body = server.rate(server.essays[4], headers=headers)
    assert status == 403 and "cross-origin" in body
    assert read_ratings(server.root, "c1").ratings == ()


def test_a_same_origin_post_is_accepted(server: Server) -> None:
    status, _, _ = server.rate(server.essays[4], headers={"Origin": server.base, "Sec-Fetch-Site": "same-origin"})
    assert status == 303 and len(read_ratings(server.root, "c1").ratings) == 1


def test_changed_files_are_reread_in_the_background_never_in_a_get(server: Server) -> None:
    """After a run rewrites a cohort's files the next page answers at once from the view it
    has; the view is rebuilt in a background thread, and a failed re-read keeps the old view
    and says why."""
    store = server.app.state.store
    assert server.request("GET", "/cohorts/c1")[0] == 200 and store.builds == 1
    analysis = server.root / "results" / "c1" / "analysis"
    analysis.mkdir(parents=True)
    (analysis / "essays.csv").write_text(
        "essay_gen_id,ci_low,ci_high,p_top_5\n" + "".join(f"{e},1.25,2.5,0.1\n" for e in server.essays),
        encoding="utf-8")
    status, _, stale = server.request("GET", "/cohorts/c1")
    assert status == 200 and 'data-column="ci_low"' not in stale  # served from the view it had
    assert store.wait_for_rebuilds(30) and store.builds == 2
    assert 'data-column="ci_low"' in server.request("GET", "/cohorts/c1")[2]

    (server.root / "cohorts/c1/membership.csv").write_text("stage,gen_id\nwhat,e_1\n", encoding="utf-8")
    assert server.request("GET", "/cohorts/c1")[0] == 200
    assert store.wait_for_rebuilds(30)
    status, _, page = server.request("GET", f"/cohorts/c1/essays/{server.essays[1]}")
    assert status == 200 and 'id="cohort-problem"' in page
    assert "membership.csv line 2: unknown stage" in page.replace("&#39;", "'")
    assert server.request("GET", "/cohorts/c1")[0] == 200 and store.wait_for_rebuilds(30)
    assert store.builds == 2 and store.problem("c1")  # the same files are not re-read again


def test_an_unexpected_error_is_a_page_naming_it(cohort: SyntheticCohort, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    from daydreaming_dagster.web.data import ExplorerStore

    def broken(self: ExplorerStore) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ExplorerStore, "summaries", broken)
    app = create_app(ExplorerConfig(data_root=str(cohort.root), secrets=Secrets()))
    response = TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False).get("/")
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    assert "internal error (RuntimeError): disk on fire" in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
