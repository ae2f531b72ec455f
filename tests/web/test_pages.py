"""The explorer's pages over a synthetic cohort, through Starlette's test client (in-process) and
a real uvicorn server for raw requests: filters, search, sort, lineage, ratings, CSRF, ids."""

from __future__ import annotations

import http.client
import re
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl
import pytest
from starlette.testclient import TestClient

from daydreaming_dagster.results.human_ratings import ratings_frame, read_ratings
from daydreaming_dagster.web.app import ExplorerConfig, create_app
from daydreaming_dagster.web.data import EssayQuery, ExplorerStore, blind_order, query_essays
from daydreaming_dagster.web.security import CSRF_FIELD, Secrets
from tests.support.cli import run_cli
from tests.web.support import (
    HOSTILE_TEXT,
    SyntheticCohort,
    essay_text,
    serve_in_thread,
    write_synthetic_cohort,
)

BASE = "http://127.0.0.1:8000"


def _text_with_hostile_first(index: int, essay_id: str) -> str:
    return HOSTILE_TEXT if index == 0 else essay_text(index, essay_id)


@pytest.fixture
def cohort(data_root: Path) -> SyntheticCohort:
    """12 essays (3 combos × 2 draft templates × 2 essay templates), the first one hostile."""
    return write_synthetic_cohort(data_root, text=_text_with_hostile_first)


@pytest.fixture
def client(cohort: SyntheticCohort) -> TestClient:
    app = create_app(ExplorerConfig(data_root=str(cohort.root), secrets=Secrets()))
    return TestClient(app, base_url=BASE)


def _csrf(page: str) -> str:
    match = re.search(rf'name="{CSRF_FIELD}" value="([0-9a-f]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _essay_links(page: str) -> list[str]:
    return re.findall(r'class="essay-link" href="/cohorts/c1/essays/(e_[0-9a-z]+)[?"]', page)


def test_index_lists_the_cohort_with_counts_cost_and_status(client: TestClient) -> None:
    page = client.get("/").text
    assert '<a href="/cohorts/c1">c1</a>' in page
    assert "6 / 6" in page and "12 / 12" in page and "24 / 24" in page  # drafts, essays, evaluations
    assert "$0.0420" in page  # 42 calls at $0.001
    assert "complete" in page


def test_filter_search_and_sort(client: TestClient, cohort: SyntheticCohort) -> None:
    everything = _essay_links(client.get("/cohorts/c1").text)
    assert sorted(everything) == sorted(cohort.essays)

    filtered = client.get("/cohorts/c1", params={"essay_template": "essay-y", "draft_template": "links-a"}).text
    expected = [e for i, e in enumerate(cohort.essays) if i % 2 == 1 and (i // 2) % 2 == 0]
    assert sorted(_essay_links(filtered)) == sorted(expected)

    found = client.get("/cohorts/c1", params={"q": "MARKER7"}).text  # case-insensitive, in the text
    assert _essay_links(found) == [cohort.essays[7]]
    assert _essay_links(client.get("/cohorts/c1", params={"q": "no such word"}).text) == []

    means = {e: sum(s) / len(s) for e, s in cohort.scores.items()}
    by_mean = _essay_links(client.get("/cohorts/c1", params={"sort": "mean", "desc": "1"}).text)
    assert [means[e] for e in by_mean] == sorted(means.values(), reverse=True)
    by_rank = _essay_links(client.get("/cohorts/c1").text)
    assert [means[e] for e in by_rank] == sorted(means.values(), reverse=True)


def test_query_pages_through_the_table(cohort: SyntheticCohort) -> None:
    view = ExplorerStore(cohort.root).cohort("c1")
    empty = pl.DataFrame(schema={"essay_gen_id": pl.String(), "score": pl.Float64()})
    pages = [query_essays(view, EssayQuery(sort="essay_gen_id", page=p, page_size=5), empty) for p in (1, 2, 3, 9)]
    assert [p.total for p in pages] == [12] * 4 and pages[0].pages == 3
    assert [len(p.rows) for p in pages] == [5, 5, 2, 2]  # a page past the end shows the last one
    assert [r["essay_gen_id"] for p in pages[:3] for r in p.rows] == sorted(cohort.essays)


def test_essay_page_shows_lineage_evaluations_and_siblings(client: TestClient, cohort: SyntheticCohort) -> None:
    essay = cohort.essays[5]
    page = client.get(f"/cohorts/c1/essays/{essay}").text
    assert "<h1>Essay number 5</h1>" in page  # Markdown rendered
    assert "<strong>emphasis</strong>" in page
    assert "Concept 000" in page and "paragraph description" in page and "A paragraph about concept-000." in page
    for score in cohort.scores[essay]:
        assert f'<td class="num score">{score:.1f}</td>' in page
    assert f"Reasoning about {essay}." in page  # the evaluator's full response
    assert "prompt of d_" in page  # the draft's prompt
    same_draft = cohort.essays[4]  # same draft, other essay template
    assert f"/cohorts/c1/essays/{same_draft}" in page.split('id="same-draft"', 1)[1].split("</ul>", 1)[0]
    same_combo = page.split('id="same-combo"', 1)[1].split("</ul>", 1)[0]
    assert sorted(re.findall(r"essays/(e_[0-9a-z]+)\"", same_combo)) == sorted(cohort.essays[6:8])


def test_blind_essay_page_hides_scores_models_and_templates(client: TestClient, cohort: SyntheticCohort) -> None:
    page = client.get(f"/cohorts/c1/essays/{cohort.essays[5]}", params={"blind": "1"}).text
    assert "Essay number 5" in page
    for hidden in ("rubric/m1", "essay-x", "essay-y", "links-a", "links-b", 'class="num score"', "Reasoning about"):
        assert hidden not in page


def test_compare_shows_essays_side_by_side(client: TestClient, cohort: SyntheticCohort) -> None:
    a, b, c = cohort.essays[1:4]
    page = client.get("/cohorts/c1/compare", params={"essays": f"{a},{b},{c}"}).text
    assert re.findall(r'class="compare-column" data-essay="(e_[0-9a-z]+)"', page) == [a, b, c]
    assert "compare cols-3" in page
    assert client.get("/cohorts/c1/compare", params={"essays": f"{a},e_unknown000000000"}).status_code == 404
    assert client.get("/cohorts/c1/compare").status_code == 400


def test_model_text_is_escaped_everywhere(client: TestClient, cohort: SyntheticCohort) -> None:
    hostile = cohort.essays[0]
    pages = [client.get(f"/cohorts/c1/essays/{hostile}").text,
             client.get("/cohorts/c1/compare", params={"essays": f"{hostile},{cohort.essays[1]}"}).text]
    for page in pages:
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
        assert "<script>window" not in page and "<img src=x" not in page and "<svg" not in page
        assert "javascript:" not in page.replace("[click me](javascript:window.__pwned=3)", "")
        assert 'href="data:' not in page
        assert "</textarea><script>" not in page
        assert len(re.findall(r"<script\b", page)) == 1  # only the explorer's own /static script


def test_rating_round_trip_and_csrf(client: TestClient, cohort: SyntheticCohort) -> None:
    essay = cohort.essays[2]
    page = client.get(f"/cohorts/c1/essays/{essay}").text
    form = {"rater": "ada", "score": "8", "note": "</textarea><b>bold</b>", "next": "/cohorts/c1/ratings"}
    url = f"/cohorts/c1/essays/{essay}/rating"

    refused = client.post(url, data=form, follow_redirects=False)
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert client.post(url, data={**form, CSRF_FIELD: "0" * 64}, follow_redirects=False).status_code == 403
    stranger = TestClient(client.app, base_url=BASE)  # another browser: its own cookie, not ours
    assert stranger.post(url, data={**form, CSRF_FIELD: _csrf(page)}, follow_redirects=False).status_code == 403
    assert read_ratings(cohort.root, "c1").ratings == ()

    saved = client.post(url, data={**form, CSRF_FIELD: _csrf(page)}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/cohorts/c1/ratings"
    frame = ratings_frame(cohort.root, "c1")
    assert frame.select("essay_gen_id", "evaluator", "score", "scale", "blind").rows() == [
        (essay, "human/ada", 8.0, "0-10", False)]

    again = client.get(f"/cohorts/c1/essays/{essay}").text  # the rater's name is remembered
    assert 'id="rater" value="ada"' in again and "Your rating: <strong>8.0</strong>" in again
    assert "&lt;/textarea&gt;&lt;b&gt;bold&lt;/b&gt;</textarea>" in again
    assert ">human/ada<" not in again  # the essay page lists LLM evaluations only
    ratings_page = client.get("/cohorts/c1/ratings").text
    assert f"/cohorts/c1/essays/{essay}" in ratings_page and "&lt;/textarea&gt;" in ratings_page

    off_scale = client.post(url, data={**form, "score": "11", CSRF_FIELD: _csrf(page)}, follow_redirects=False)
    assert off_scale.status_code == 400 and "outside the scale 0-10" in off_scale.text
    bad_rater = client.post(url, data={**form, "rater": "<x>", CSRF_FIELD: _csrf(page)}, follow_redirects=False)
    assert bad_rater.status_code == 400 and "invalid rater name" in bad_rater.text
    outside = client.post(url, data={**form, "next": "//evil.example/", CSRF_FIELD: _csrf(page)}, follow_redirects=False)
    assert outside.headers["location"] == f"/cohorts/c1/essays/{essay}"  # no open redirect
    assert len(read_ratings(cohort.root, "c1").ratings) == 2


def test_rating_queue_is_seeded_and_keeps_its_place(client: TestClient, cohort: SyntheticCohort) -> None:
    first = client.get("/cohorts/c1/rate", follow_redirects=False)
    assert first.status_code == 303 and re.search(r"seed=\d+", first.headers["location"])
    view = ExplorerStore(cohort.root).cohort("c1")
    order = blind_order(view, 42)
    assert sorted(order) == sorted(cohort.essays) and order != sorted(order)
    assert blind_order(view, 42) == order and blind_order(view, 43) != order
    page = client.get("/cohorts/c1/rate", params={"seed": "42", "i": "1", "rater": "bo"}).text
    assert f'data-essay="{order[1]}"' in page
    assert 'name="blind" value="1"' in page and "rubric/m1" not in page  # blind by default
    assert "seed=42" in page and "i=2" in page  # the form moves on to the next essay


@pytest.mark.parametrize("path", [
    "/cohorts/..%2F..%2Fetc/essays/x",
    "/cohorts/c1/essays/..%2F..%2Fcombo_mappings.csv",
    "/cohorts/c1/essays/%2e%2e",
    "/cohorts/c1/essays/..",
    "/cohorts/../gens/essays/x",
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/cohorts/c1/essays/e_unknown000000000",
    "/cohorts/nope",
])
def test_bad_paths_are_404_on_a_real_server(cohort: SyntheticCohort, path: str) -> None:
    app = create_app(ExplorerConfig(data_root=str(cohort.root), secrets=Secrets()))
    with serve_in_thread(app) as base:
        connection = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=10)
        connection.request("GET", path)  # sent as is: no client-side normalisation of "..""
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
    assert response.status == 404, body
    assert "combo_id" not in body and "import" not in body


def test_security_headers_and_dns_rebinding_guard(client: TestClient) -> None:
    response = client.get("/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "samesite=strict" in response.headers["set-cookie"].lower()
    assert client.get("/", headers={"host": "evil.example:8000"}).status_code == 400


def test_remote_mode_requires_the_token(cohort: SyntheticCohort) -> None:
    secrets = Secrets.for_server(require_token=True)
    app = create_app(ExplorerConfig(data_root=str(cohort.root), secrets=secrets, allow_remote=True))
    client = TestClient(app, base_url="http://192.0.2.10:8000")
    assert client.get("/").status_code == 401
    assert client.get("/cohorts/c1", params={"token": "wrong"}).status_code == 401
    entered = client.get("/cohorts/c1", params={"token": secrets.access_token, "q": "x"}, follow_redirects=False)
    assert entered.status_code == 303 and entered.headers["location"] == "/cohorts/c1?q=x"
    assert client.get("/cohorts/c1").status_code == 200  # the cookie now carries the token
    assert TestClient(app, base_url="http://192.0.2.10:8000").get("/static/explorer.css").status_code == 401


def test_cli_refuses_a_network_host_without_allow_remote(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["view", "--host", "0.0.0.0", "--data-root", str(data_root)], capsys)
    assert code == 2
    assert "not a loopback address" in err and "--allow-remote" in err


def test_report_prints_the_explorer_hint_and_links_pages(cohort: SyntheticCohort, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["report", "c1", "--data-root", str(cohort.root)], capsys)
    assert code == 0, err
    assert "explore: uv run daydream view  →  http://127.0.0.1:8000/cohorts/c1" in err
    report = (cohort.root / "cohorts" / "c1" / "reports" / "report.md").read_text()
    assert "(http://127.0.0.1:8000/cohorts/c1)" in report
    assert re.search(r"\[read\]\(http://127\.0\.0\.1:8000/cohorts/c1/essays/e_[0-9a-z]+\)", report)


def test_queue_resumes_at_the_first_unrated_essay(client: TestClient, cohort: SyntheticCohort) -> None:
    order = blind_order(ExplorerStore(cohort.root).cohort("c1"), 5)
    page = client.get("/cohorts/c1/rate", params={"seed": "5", "i": "0"}).text
    for essay in order[:2]:
        client.post(f"/cohorts/c1/essays/{essay}/rating",
                    data={"rater": "cy", "score": "4", CSRF_FIELD: _csrf(page)}, follow_redirects=False)
    resumed = client.get("/cohorts/c1/rate", params={"seed": "5"}).text  # the rater cookie is set
    assert f'data-essay="{order[2]}"' in resumed and "2 rated by cy" in resumed


def test_analysis_columns_and_dagster_links(cohort: SyntheticCohort) -> None:
    analysis = cohort.root / "results" / "c1" / "analysis"
    analysis.mkdir(parents=True)
    pl.DataFrame({"essay_gen_id": cohort.essays, "mean": [5.0] * 12, "ci_low": [3.25] * 12,
                  "ci_high": [6.75] * 12, "n": [2] * 12, "p_top_5": [0.5] * 12}).write_csv(analysis / "essays.csv")
    app = create_app(ExplorerConfig(data_root=str(cohort.root), secrets=Secrets(), dagster_url="http://127.0.0.1:3000"))
    client = TestClient(app, base_url=BASE)
    table = client.get("/cohorts/c1").text
    assert ">ci_low" in table and ">ci_high" in table and ">3.25<" in table and ">6.75<" in table
    essay = client.get(f"/cohorts/c1/essays/{cohort.essays[3]}").text
    assert "(95% CI 3.25–6.75)" in essay
    assert f'href="http://127.0.0.1:3000/assets/essay_parsed?view=partitions&amp;partition={cohort.essays[3]}"' in essay


def test_without_analysis_there_is_no_ci_column(client: TestClient) -> None:
    assert ">ci_low" not in client.get("/cohorts/c1").text


def test_axes_with_one_level_are_listed_once(client: TestClient) -> None:
    page = client.get("/cohorts/c1").text
    constant = page.split('id="constant-axes"', 1)[1].split("</p>", 1)[0]
    assert "draft_llm = <code>m1</code>" in constant and "essay_replicate = <code>1</code>" in constant
    header = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert ">draft_template" in header and ">essay_template" in header and ">draft_llm" not in header


def test_ratings_page_shows_human_vs_llm_agreement(client: TestClient, cohort: SyntheticCohort) -> None:
    from scipy.stats import spearmanr

    def llm_score(essay: str, model: str) -> float:
        return cohort.scores[essay][("m1", "m2").index(model)]

    page = client.get("/cohorts/c1/ratings").text
    assert 'id="agreement"' not in page and "No human ratings yet." in page
    essays = cohort.essays[1:7]
    human = {essay: float(10 - i) for i, essay in enumerate(essays)}
    token = _csrf(client.get(f"/cohorts/c1/essays/{essays[0]}").text)
    for essay, score in human.items():
        client.post(f"/cohorts/c1/essays/{essay}/rating",
                    data={"rater": "ada", "score": str(score), CSRF_FIELD: token}, follow_redirects=False)
    page = client.get("/cohorts/c1/ratings").text
    table = page.split('id="agreement"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td class=\"num\">([^<]*)</td><td class=\"num\">(\d+)</td></tr>", table)
    assert {(h, llm, n) for h, llm, _, n in rows} == {("human/ada", e, "6") for e in ("rubric/m1", "rubric/m2", "consensus")}
    for _, llm, rho, _ in rows:
        if llm == "consensus":
            continue
        expected = spearmanr([human[e] for e in essays], [llm_score(e, llm.split("/")[1]) for e in essays]).statistic
        assert rho == ("" if expected != expected else f"{expected:.2f}")  # NaN (constant) shows blank
    assert 'id="agreement"' in client.get("/cohorts/c1").text  # also on the cohort page
