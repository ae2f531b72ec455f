"""The explorer's reading flow over a synthetic cohort, in-process (issue 23): previous/next in
the table's order, titles, search over concepts and titles, filter labels, per-evaluator
columns and reasons, compare with reasons, the queue's end, counts and column tooltips."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from daydreaming_dagster.web.app import ExplorerConfig, create_app
from daydreaming_dagster.web.data import ExplorerStore, _title, blind_order
from daydreaming_dagster.web.security import CSRF_FIELD, Secrets
from tests.web.support import SyntheticCohort, write_synthetic_cohort

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def cohort(data_root) -> SyntheticCohort:  # noqa: ANN001
    """24 essays: 6 combinations (4 concepts) × 2 draft templates × 2 essay templates."""
    return write_synthetic_cohort(data_root, combos=6)


@pytest.fixture
def client(cohort: SyntheticCohort) -> TestClient:
    return TestClient(create_app(ExplorerConfig(data_root=str(cohort.root), secrets=Secrets())), base_url=BASE)


def _links(page: str) -> list[str]:
    """The essay-table's title links, in row order (href, unescaped)."""
    return [html.unescape(h) for h in re.findall(r'class="essay-link" href="([^"]+)"', page)]


def _essay(href: str) -> str:
    return urlsplit(href).path.rsplit("/", 1)[1]


def _nav(page: str, rel: str) -> str | None:
    match = re.search(rf'id="{rel}" rel="{rel}" href="([^"]+)"', page)
    return html.unescape(match.group(1)) if match else None


def _csrf(page: str) -> str:
    match = re.search(rf'name="{CSRF_FIELD}" value="([0-9a-f]+)"', page)
    assert match
    return match.group(1)


def test_next_and_previous_walk_the_filtered_sorted_table(client: TestClient, cohort: SyntheticCohort) -> None:
    table = {"essay_template": "essay-y", "sort": "mean", "desc": "1"}
    rows = _links(client.get("/cohorts/c1", params=table).text)
    assert len(rows) == 12
    for href in rows:  # every link remembers the table
        assert {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()} == table

    walked, href = [], rows[0]
    while href:
        page = client.get(href).text
        walked.append(_essay(href))
        assert f"essay <strong>{len(walked)}</strong> of 12 in the filtered table" in page
        href = _nav(page, "next")
    assert walked == [_essay(h) for h in rows]  # the table's order, filters and sort kept

    back, href = [], rows[-1]
    while href:
        page = client.get(href).text
        back.append(_essay(href))
        href = _nav(page, "prev")
    assert back == walked[::-1]
    last = client.get(rows[-1]).text
    assert 'href="/cohorts/c1?essay_template=essay-y&amp;sort=mean&amp;desc=1"' in last  # back to the table

    # The essay's title is the page's heading; outside any table the order is the rank.
    page = client.get(f"/cohorts/c1/essays/{cohort.essays[3]}").text
    assert '<h1 id="essay-title">Essay number 3</h1>' in page
    by_rank = [_essay(h) for h in _links(client.get("/cohorts/c1").text)]
    first = client.get(f"/cohorts/c1/essays/{by_rank[0]}").text
    assert _nav(first, "prev") is None and _essay(_nav(first, "next") or "") == by_rank[1]


def test_titles_are_the_first_linked_column(client: TestClient) -> None:
    page = client.get("/cohorts/c1").text
    header = re.findall(r'<th title="[^"]*" data-column="([^"]+)"', page)
    assert header[0] == "title" and header[-1] == "essay_gen_id"
    assert re.search(r'<td class="title"><a class="essay-link" href="[^"]+">Essay number \d+</a></td>', page)


def test_search_finds_concept_names_titles_and_text(client: TestClient, cohort: SyntheticCohort) -> None:
    def found(q: str) -> set[str]:
        return {_essay(h) for h in _links(client.get("/cohorts/c1", params={"q": q}).text)}

    view = ExplorerStore(cohort.root).cohort("c1")
    with_concept = set(view.essays.filter(view.essays["concepts"].str.contains("Concept 003"))["essay_gen_id"])
    assert with_concept and found("concept 003") == with_concept  # a name the table shows
    assert found("Essay number 7") == {cohort.essays[7]}  # a title
    assert found("marker11 is") == {cohort.essays[11]}  # the text, as before
    assert found(cohort.essays[5]) == {cohort.essays[5]}  # an id


def test_the_combination_filter_shows_concept_names(client: TestClient, cohort: SyntheticCohort) -> None:
    page = client.get("/cohorts/c1").text
    select = page.split('id="filter-combo_id"', 1)[1].split("</select>", 1)[0]
    labels = re.findall(r'<option value="([^"]+)">([^<]+)</option>', select)
    assert len(labels) == 6 and all(re.fullmatch(r"Concept \d{3} \+ Concept \d{3}", label) for _, label in labels)
    combo, label = labels[0]
    filtered = client.get("/cohorts/c1", params={"combo_id": combo}).text
    assert f'<option value="{combo}" selected>{label}</option>' in filtered
    rows = _links(filtered)
    view = ExplorerStore(cohort.root).cohort("c1")
    assert {_essay(h) for h in rows} == set(view.essays.filter(view.essays["combo_id"] == combo)["essay_gen_id"])
    assert label.replace(" + ", ", ") == view.essays.filter(view.essays["combo_id"] == combo)["concepts"][0]


def test_per_evaluator_columns_link_to_open_reasons(client: TestClient, cohort: SyntheticCohort) -> None:
    page = client.get("/cohorts/c1", params={"sort": "score:rubric/m2", "desc": "1"}).text
    header = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert 'data-column="score:rubric/m1"' in header and 'data-column="score:rubric/m2"' in header
    assert 'title="Score given by rubric/m1 (mean over its replicates); click a score to read its reasons"' in header
    links = re.findall(r'class="reasons-link" href="([^"]+)" title="read rubric/m2\'s reasons">([0-9.]+)</a>', page)
    m2 = [float(score) for _, score in links]
    assert m2 == sorted(m2, reverse=True) and len(m2) == 24  # sortable by that evaluator
    href = html.unescape(links[0][0])
    essay = _essay(href.split("#", 1)[0])
    assert m2[0] == cohort.scores[essay][1]
    opened = client.get(href.split("#", 1)[0]).text
    details = re.findall(r'<details class="evaluation-response" id="eval-([^"]+)" (open)?>', opened)
    assert [(gen.split("_")[0], flag) for gen, flag in details] == [("v", ""), ("v", "open")]
    assert f"Reasoning about {essay}." in opened


def test_compare_shows_each_evaluators_reasons_side_by_side(client: TestClient, cohort: SyntheticCohort) -> None:
    a, b = cohort.essays[2], cohort.essays[9]
    page = client.get("/cohorts/c1/compare", params={"essays": f"{a},{b}"}).text
    reasons = page.split('id="compare-reasons"', 1)[1]
    columns = re.findall(r'<section class="reasons-column" data-essay="([^"]+)">', reasons)
    assert columns == [a, b]
    for essay in (a, b):
        column = reasons.split(f'data-essay="{essay}"', 1)[1].split("</section>", 1)[0]
        assert column.count("<details class=\"reasons\" open") == 2 and f"Reasoning about {essay}." in column
    # Two essays: each heading carries its pairwise side (A left, B right).
    for side, essay, title in (("A", a, "Essay number 2"), ("B", b, "Essay number 9")):
        assert re.search(rf'<h2><span class="side"[^>]*>{side}</span> <a href="/cohorts/c1/essays/{essay}">{title}</a></h2>',
                         page)


@pytest.mark.parametrize("count", [1, 5])
def test_compare_with_a_bad_count_keeps_the_selection(client: TestClient, cohort: SyntheticCohort, count: int) -> None:
    chosen = cohort.essays[:count]
    response = client.get("/cohorts/c1/compare", params=[("essays", e) for e in chosen])
    assert response.status_code == 400
    kept = re.findall(r'<input type="checkbox" name="essays" value="([^"]+)" checked>', response.text)
    assert kept == chosen and "Compare takes 2 to 4 essays" in response.text
    back = client.get("/cohorts/c1", params=[("essays", e) for e in chosen]).text  # the table keeps the ticks
    assert sorted(re.findall(r'name="essays" value="([^"]+)" aria-label="[^"]*" checked', back)) == sorted(chosen)


def test_the_queue_ends_instead_of_restarting(client: TestClient, cohort: SyntheticCohort) -> None:
    order = blind_order(ExplorerStore(cohort.root).cohort("c1"), 9)
    token = _csrf(client.get("/cohorts/c1/rate", params={"seed": "9", "i": "0"}).text)
    for position, essay in enumerate(order):
        if position == 3:
            continue  # skipped with "n"
        saved = client.post(f"/cohorts/c1/essays/{essay}/rating", follow_redirects=False, data={
            "rater": "di", "score": "7.5", CSRF_FIELD: token, "next": f"/cohorts/c1/rate?seed=9&i={position + 1}"})
        assert saved.status_code == 303
    end = client.get(saved.headers["location"]).text  # after the last essay: the end, not essay 1
    assert 'id="queue-done"' in end and "End of the queue" in end and "23 of 24 essays rated by di" in end
    assert 'id="first-unrated" href="?seed=9&amp;i=3"' in end
    resumed = client.get("/cohorts/c1/rate", params={"seed": "9"}).text
    assert f'data-essay="{order[3]}"' in resumed
    client.post(f"/cohorts/c1/essays/{order[3]}/rating", data={"rater": "di", "score": "2", CSRF_FIELD: token},
                follow_redirects=False)
    done = client.get("/cohorts/c1/rate", params={"seed": "9"}).text  # everything rated: done, not essay 1
    assert "Done: every essay rated" in done and 'id="essay-text"' not in done
    again = client.get("/cohorts/c1/rate", params={"seed": "9", "i": "0"}).text
    assert 'value="7.5"' in again and "Your rating: <strong>7.5</strong>" in again  # half points kept


def test_rating_counts_agree_between_pages(client: TestClient, cohort: SyntheticCohort) -> None:
    token = _csrf(client.get("/cohorts/c1").text)
    for rater, essay, score in (("ada", 0, 3), ("ada", 0, 5), ("ada", 1, 4), ("bo", 0, 6)):
        client.post(f"/cohorts/c1/essays/{cohort.essays[essay]}/rating",
                    data={"rater": rater, "score": str(score), CSRF_FIELD: token}, follow_redirects=False)
    index = client.get("/").text
    assert '<a href="/cohorts/c1/ratings">3</a>' in index  # 4 lines, 3 current ratings
    assert ">3 human ratings</a>" in client.get("/cohorts/c1").text
    ratings = client.get("/cohorts/c1/ratings").text
    assert "<h2>Ratings (3)</h2>" in ratings and ">Essay number 0</a>" in ratings


def test_column_headers_explain_themselves(cohort: SyntheticCohort) -> None:
    import polars as pl

    analysis = cohort.root / "results" / "c1" / "analysis"
    analysis.mkdir(parents=True)
    pl.DataFrame({"essay_gen_id": cohort.essays, "ci_low": [1.0] * 24, "ci_high": [2.0] * 24,
                  "p_top_5": [0.2] * 24}).write_csv(analysis / "essays.csv")
    client = TestClient(create_app(ExplorerConfig(data_root=str(cohort.root), secrets=Secrets())), base_url=BASE)
    header = client.get("/cohorts/c1").text.split("<thead>", 1)[1].split("</thead>", 1)[0]
    tips = dict((c, t) for t, c in re.findall(r'<th title="([^"]*)" data-column="([^"]+)"', header))
    assert tips["spread"].startswith("Highest minus lowest LLM score")
    assert tips["p_top_5"].startswith("Probability that this essay is among the 5 best")
    assert tips["human_n"].startswith("Number of people who rated")
    assert all(tip and tip != column for column, tip in tips.items())


@pytest.mark.parametrize(("text", "title"), [
    ("[synthetic text for essay e_1]\n\nSure! Here's an essay linking the two:\n\nTides and Codes\n\nBody.", "Tides and Codes"),
    ("Certainly. Below is the revised essay:\n\n**The Memory of Fields**\n\nBody.", "The Memory of Fields"),
    ("Here is my essay.\n\nTitle: \"Rotations\"\n\nBody.", "Rotations"),
    ("Okay, here you go\n\n## *Signals in Pools*\n\nBody.", "Signals in Pools"),
    ("Plain opening line\nmore", "Plain opening line"),
])
def test_the_title_skips_preambles(text: str, title: str) -> None:
    assert _title(text) == title


def test_a_list_item_title_loses_its_marker() -> None:
    assert _title("[synthetic text]\nNotes on possible links:\n- Link 1: a and b.\n- Link 2") == "Link 1: a and b."
