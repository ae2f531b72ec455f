"""Issue 20 on the compare page: the judges' pairwise verdicts and reasons for the pair (either
order shown, translated to the page's sides), the people's preferences, and the preference form
with the rating form's protections; hostile judge text and hostile form input."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from daydreaming_dagster.results.human_comparisons import human_comparisons_frame, read_comparisons
from daydreaming_dagster.web.app import ExplorerConfig, create_app
from daydreaming_dagster.web.security import CSRF_FIELD, MAX_BODY_BYTES, Secrets
from tests.web.support import (
    HOSTILE_TEXT,
    PlannedComparison,
    SyntheticCohort,
    serve_in_thread,
    write_comparisons,
    write_synthetic_cohort,
)

BASE = "http://127.0.0.1:8000"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def cohort(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> SyntheticCohort:
    """12 essays; X = essays[0], Y = essays[1] judged four times (one in each order by m1, one
    hostile answer by m2, one seeded but not run), and another pair judged once."""
    cohort = write_synthetic_cohort(data_root)
    x, y, z, w = cohort.essays[:4]
    write_comparisons(data_root, "c1", [
        PlannedComparison(x, y, "judge-1", "X is vivid; Y rambles.\nWINNER: A", "A"),
        PlannedComparison(y, x, "judge-1", "The first essay is stronger.\nWINNER: A", "A", round=2),
        PlannedComparison(x, y, "judge-2", HOSTILE_TEXT + "\nWINNER: B", "B", template_id="compare-novelty"),
        PlannedComparison(y, x, "judge-2", None, round=3),
        PlannedComparison(z, w, "judge-1", "Z wins.\nWINNER: A", "A"),
        PlannedComparison(w, x, "judge-1", "no idea, honestly", None),
    ])
    return cohort


@pytest.fixture
def client(cohort: SyntheticCohort) -> TestClient:
    return TestClient(create_app(ExplorerConfig(data_root=str(cohort.root), secrets=Secrets())), base_url=BASE)


def _verdicts(page: str) -> list[tuple[str, str]]:
    """(page verdict, swapped flag) of every judge on the page, in page order."""
    return re.findall(r'class="verdict" data-comparison="p_[0-9a-z]+" data-verdict="([A-Btie]*)" '
                      r'data-swapped="([01])"', page)


def _csrf(page: str) -> str:
    match = re.search(rf'name="{CSRF_FIELD}" value="([0-9a-f]+)"', page)
    assert match
    return match.group(1)


def _post(client: TestClient, page: str, **fields: str):  # noqa: ANN202 - httpx response
    form = {CSRF_FIELD: _csrf(page), "rater": "ada", **fields}
    return client.post("/cohorts/c1/compare/preference", content=urlencode(form), headers=FORM,
                       follow_redirects=False)


def test_compare_shows_every_judges_verdict_for_the_pair_in_either_order(client, cohort) -> None:  # noqa: ANN001
    x, y = cohort.essays[:2]
    page = client.get("/cohorts/c1/compare", params={"essays": f"{x},{y}"}).text
    # judge-1 in X,Y order said A (= X); judge-1 shown Y,X said A (= Y, the page's B), flagged;
    # judge-2 said B (= Y); judge-2 shown Y,X has not answered yet. Sorted by round.
    assert _verdicts(page) == [("A", "0"), ("B", "0"), ("B", "1"), ("", "1")]
    assert page.count("shown to the judge in the other order") == 2
    assert "(it answered A)" in page
    assert "X is vivid; Y rambles." in page and "The first essay is stronger." in page
    assert "judge-1 · compare-overall · round 2" in page and "compare-novelty" in page
    assert re.search(r'id="judge-tally">4 comparison\(s\) of this pair: 1 prefer A, 2 prefer B, 0 tie, '
                     r"1 without a verdict", page)
    assert "status-missing" in page and "Z wins." not in page  # another pair's comparison
    # The same pair from the other side: every verdict flips, the flags follow the order shown.
    flipped = client.get("/cohorts/c1/compare", params={"essays": f"{y},{x}"}).text
    assert _verdicts(flipped) == [("B", "1"), ("A", "1"), ("A", "0"), ("", "0")]


def test_judge_text_is_escaped_and_a_parse_failure_is_shown(client, cohort) -> None:  # noqa: ANN001
    x, y, w = cohort.essays[0], cohort.essays[1], cohort.essays[3]
    page = client.get("/cohorts/c1/compare", params={"essays": f"{x},{y}"}).text
    reasons = page.split('id="judge-verdicts"', 1)[1]
    assert "<script>" not in reasons and "<img" not in reasons
    assert html.escape("<script>window.__pwned = 1</script>", quote=False) in reasons
    assert "&lt;/textarea&gt;&lt;script&gt;" in reasons and "<svg" not in reasons
    failed = client.get("/cohorts/c1/compare", params={"essays": f"{x},{w}"}).text
    assert _verdicts(failed) == [("", "1")] and "no verdict line found" in failed


def test_no_judge_for_the_pair_and_three_essays(client, cohort) -> None:  # noqa: ANN001
    a, b, c = cohort.essays[5:8]
    page = client.get("/cohorts/c1/compare", params={"essays": f"{a},{b}"}).text
    assert 'id="no-judge-verdicts"' in page and 'id="preference-form"' in page
    three = client.get("/cohorts/c1/compare", params={"essays": f"{a},{b},{c}"}).text
    assert 'id="preference-form"' not in three and 'id="pairwise-hint"' in three


def test_blind_compare_hides_the_judges_and_other_peoples_preferences(client, cohort) -> None:  # noqa: ANN001
    x, y = cohort.essays[:2]
    page = client.get("/cohorts/c1/compare", params={"essays": f"{x},{y}"}).text
    assert _post(client, page, essay_a=x, essay_b=y, preference="A", rater="bo").status_code == 303
    blind = client.get("/cohorts/c1/compare", params={"essays": f"{x},{y}", "blind": "1", "rater": "ada"}).text
    assert 'id="judge-verdicts"' not in blind and "judge-1" not in blind and 'data-rater="bo"' not in blind
    assert 'id="preference-form"' in blind


def test_a_preference_is_recorded_and_shown_translated_in_the_other_order(client, cohort) -> None:  # noqa: ANN001
    x, y = cohort.essays[:2]
    url = f"/cohorts/c1/compare?essays={x},{y}"
    page = client.get(url).text
    response = _post(client, page, essay_a=x, essay_b=y, preference="B", note="</textarea><b>y</b>",
                     next=url)
    assert response.status_code == 303 and response.headers["location"] == url
    stored = read_comparisons(cohort.root, "c1")
    assert [(c.essay_a, c.essay_b, c.preference, c.rater) for c in stored.comparisons] == [(x, y, "B", "ada")]
    shown = client.get(url).text
    assert re.search(r'id="saved-preference" data-preference="B">Your preference: <strong>B: ', shown)
    assert "&lt;/textarea&gt;&lt;b&gt;y&lt;/b&gt;" in shown and "</textarea><b>" not in shown
    # Seen from the other side it is the page's A, flagged as given in the other order.
    other = client.get(f"/cohorts/c1/compare?essays={y},{x}").text
    assert re.search(r'data-rater="ada" data-preference="A">', other)
    assert "shown in the other order (said B)" in other
    # Again, changed: the latest counts; the verdict frame carries it as a human judge.
    _post(client, shown, essay_a=x, essay_b=y, preference="tie")
    frame = human_comparisons_frame(cohort.root, "c1")
    assert frame.select("essay_a", "essay_b", "judge", "verdict").rows() == [(x, y, "human:ada", "tie")]


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({"preference": "C"}, 400, "preference &#39;C&#39; is not one of A, B, tie"),
    ({"preference": ""}, 400, "is not one of A, B, tie"),
    ({"essay_b": "e_unknown000000000"}, 400, "essay_b &#39;e_unknown000000000&#39; is not an essay of cohort c1"),
    ({"essay_a": "../../etc/passwd"}, 400, "is not an essay of cohort c1"),
    ({"essay_b": ""}, 400, "essay_b is missing"),
    ({"rater": "<script>"}, 400, "invalid rater name"),
    ({"note": "n" * 10_001}, 400, "note is longer than 10000 characters"),
])
def test_bad_preferences_are_refused_with_a_reason_and_nothing_is_written(
        client, cohort, fields, status, message) -> None:  # noqa: ANN001
    x, y = cohort.essays[:2]
    page = client.get(f"/cohorts/c1/compare?essays={x},{y}").text
    response = _post(client, page, **{"essay_a": x, "essay_b": y, "preference": "A", **fields})
    assert response.status_code == status and message in response.text
    assert read_comparisons(cohort.root, "c1").comparisons == ()


def test_a_draft_of_the_cohort_is_not_an_essay(client, cohort) -> None:  # noqa: ANN001
    x, y = cohort.essays[:2]
    page = client.get(f"/cohorts/c1/compare?essays={x},{y}").text
    response = _post(client, page, essay_a=x, essay_b=cohort.drafts[0], preference="A")
    assert response.status_code == 400 and "is not an essay of cohort c1" in response.text
    same = _post(client, page, essay_a=x, essay_b=x, preference="A")
    assert same.status_code == 400 and "the same essay" in same.text


# -- raw requests against a real server: CSRF, origin, size ------------------------------------
@pytest.fixture
def server(cohort: SyntheticCohort) -> Iterator[tuple[str, SyntheticCohort]]:
    with serve_in_thread(create_app(ExplorerConfig(data_root=str(cohort.root), secrets=Secrets()))) as base:
        yield base, cohort


def _raw(base: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         cookie: str | None = None) -> tuple[int, dict[str, str], str]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    sent = {"Host": parts.netloc, **(headers or {})}
    if cookie:
        sent["Cookie"] = cookie
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    text = response.read().decode("utf-8", "replace")
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, text
    connection.close()
    return result


def _session(base: str, x: str, y: str) -> tuple[str, str]:
    _, headers, page = _raw(base, "GET", f"/cohorts/c1/compare?essays={x},{y}")
    return headers["set-cookie"].split(";", 1)[0], _csrf(page)


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
])
def test_a_cross_origin_preference_is_refused_even_with_the_csrf_pair(server, headers) -> None:  # noqa: ANN001
    base, cohort = server
    x, y = cohort.essays[:2]
    cookie, token = _session(base, x, y)
    body = urlencode({CSRF_FIELD: token, "rater": "ada", "essay_a": x, "essay_b": y, "preference": "A"}).encode()
    status, _, text = _raw(base, "POST", "/cohorts/c1/compare/preference", body, {**FORM, **headers}, cookie)
    assert status == 403 and "cross-origin" in text
    status, _, _ = _raw(base, "POST", "/cohorts/c1/compare/preference", body, {**FORM, "Origin": base}, cookie)
    assert status == 303  # the same request from this server's page is accepted
    assert len(read_comparisons(cohort.root, "c1").comparisons) == 1


def test_a_preference_without_the_csrf_pair_or_too_large_is_refused(server) -> None:  # noqa: ANN001
    base, cohort = server
    x, y = cohort.essays[:2]
    cookie, token = _session(base, x, y)
    fields = {"rater": "ada", "essay_a": x, "essay_b": y, "preference": "A"}
    status, _, text = _raw(base, "POST", "/cohorts/c1/compare/preference", urlencode(fields).encode(), FORM, cookie)
    assert status == 403 and "CSRF" in text
    status, _, _ = _raw(base, "POST", "/cohorts/c1/compare/preference",
                        urlencode({**fields, CSRF_FIELD: "0" * 64}).encode(), FORM, cookie)
    assert status == 403
    huge = urlencode({**fields, CSRF_FIELD: token, "note": "x" * (MAX_BODY_BYTES + 1)}).encode()
    status, _, text = _raw(base, "POST", "/cohorts/c1/compare/preference", huge, FORM, cookie)
    assert status == 413
    assert read_comparisons(cohort.root, "c1").comparisons == ()
