"""The explorer in a real browser: headless Chromium driven by Selenium (Debian's chromium and
chromium-driver, installed by scripts/install_system_deps.sh).

`daydream run demo` fills a temporary data root with the offline provider; hostile model text
is then planted in one essay's lineage; `daydream view` serves it in a real process. The
scenario of issue 13: open the cohort, filter by a template, open an essay, expand an
evaluation, rate three essays in blind mode with the keyboard, reload and see the ratings
kept, and the ratings reach the analysis tables; the planted payloads execute nothing; a POST
without the CSRF token is refused; ``../`` is a 404. The reading flow of issue 23: the top
essay by its title, next/previous (keys) through a filtered table, a concept-name search,
compare with both evaluators' reasons, a half-point score. Screenshots of the main pages land
in ``tests/web/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl
import pytest

from daydreaming_dagster.analysis import load_score_table
from daydreaming_dagster.cohorts import read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.results.cohort import load_cohort_records
from daydreaming_dagster.results.human_ratings import ratings_frame
from daydreaming_dagster.web.security import ACCESS_COOKIE
from tests.support.browser import CHROMIUM_FLAGS as SHARED_CHROMIUM_FLAGS
from tests.support.demo import copy_demo
from tests.support.servers import free_port
from tests.web.support import HOSTILE_TEXT

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_FLAGS = (
    *SHARED_CHROMIUM_FLAGS,
    "--window-size=1400,1000",
)
# Variables that could point the demo run at real services (tests/conftest.py clears them per
# test; these module-scoped fixtures start before that).
_SCRUBBED_ENV = ("OPENROUTER_API_KEY", "OPENAI_API_KEY", "DAYDREAMING_LLM_BASE_URL", "DAYDREAMING_LLM_API_KEY",
                 "DAYDREAMING_ENV", "DAYDREAMING_DATA_ROOT")
HOSTILE_NOTE = "</textarea><script>window.__pwned = 7</script>"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser tests must run in CI, but: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Explorer:
    base: str
    root: Path
    hostile_essay: str
    essays: list[str]


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daydream view exited with {process.returncode}: {log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"daydream view did not answer {url} within {timeout:.0f} s: {log.read_text(errors='replace')}")


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _rewrite(layer: GensDataLayer, stage: str, gen_id: str, **texts: str) -> None:
    """Replace some of a generation's texts, keeping its metadata (a prompt or raw write clears
    what was derived from it, so every phase is written again in order)."""
    prompt = texts.get("prompt", layer.read_prompt(stage, gen_id))
    raw = texts.get("raw", layer.read_raw(stage, gen_id))
    parsed = texts.get("parsed", layer.read_parsed(stage, gen_id))
    raw_metadata, parsed_metadata = layer.read_raw_metadata(stage, gen_id), layer.read_parsed_metadata(stage, gen_id)
    layer.write_prompt(stage, gen_id, prompt)
    layer.write_raw(stage, gen_id, raw)
    layer.write_raw_metadata(stage, gen_id, raw_metadata)
    layer.write_parsed(stage, gen_id, parsed)
    layer.write_parsed_metadata(stage, gen_id, parsed_metadata)


def _plant_payloads(root: Path) -> tuple[str, list[str]]:
    """Put the hostile text in the first essay (parsed and raw), its draft and one evaluation."""
    layer = GensDataLayer.from_root(root)
    members = read_membership(str(root), "demo")
    cohort = load_cohort_records(root, "demo")
    essay = members["essay"][0]
    _rewrite(layer, "essay", essay, raw=HOSTILE_TEXT, parsed=HOSTILE_TEXT)
    _rewrite(layer, "draft", cohort.record("essay", essay).parent_gen_id, prompt=HOSTILE_TEXT, raw=HOSTILE_TEXT)
    evaluation = next(g for g in members["evaluation"] if cohort.record("evaluation", g).parent_gen_id == essay)
    _rewrite(layer, "evaluation", evaluation, raw=HOSTILE_TEXT + "\nSCORE: 5")
    return essay, members["essay"]


@pytest.fixture(scope="module")
def explorer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Explorer]:
    """The demo cohort run offline, payloads planted, served by `daydream view` on a free port."""
    tmp = tmp_path_factory.mktemp("explorer")
    root = copy_demo(tmp / "data")
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["DAGSTER_HOME"] = str(tmp / "dagster_home")
    (tmp / "dagster_home").mkdir()
    run = subprocess.run([sys.executable, "-m", "daydreaming_dagster", "run", "demo", "--data-root", str(root)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "explore: uv run daydream view  →  http://127.0.0.1:8000/cohorts/demo" in run.stderr
    hostile, essays = _plant_payloads(root)
    port = free_port()
    log = tmp / "view.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "daydreaming_dagster", "view", "--port", str(port), "--data-root", str(root)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(base + "/", server, log)
        yield Explorer(base, root, hostile, essays)
    finally:
        _stop_server(server)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        _unavailable("chromium or chromedriver is not on PATH "
                     "(scripts/install_system_deps.sh installs Debian's chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver, name: str) -> None:  # noqa: ANN001 - selenium WebDriver
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")


def _wait(driver, condition, timeout: float = 15):  # noqa: ANN001, ANN202 - selenium types
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _no_script_ran(driver) -> None:  # noqa: ANN001
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    counts = driver.execute_script("""return {
        onerror: document.querySelectorAll('[onerror]').length,
        onload: document.querySelectorAll('[onload]').length,
        javascript: document.querySelectorAll('a[href^="javascript" i], a[href^="data" i]').length,
        inline: document.querySelectorAll('script:not([src])').length,
        img: document.querySelectorAll('img').length,
        svg: document.querySelectorAll('svg').length};""")
    assert counts == {"onerror": 0, "onload": 0, "javascript": 0, "inline": 0, "img": 0, "svg": 0}


def test_read_filter_expand_and_rate_blind_with_the_keyboard(explorer: Explorer, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(explorer.base + "/")
    assert "demo" in driver.find_element(By.ID, "cohorts").text
    _screenshot(driver, "index")

    # The cohort, filtered by a template: the select submits itself (explorer.js).
    driver.find_element(By.LINK_TEXT, "demo").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "essays"))
    assert driver.find_element(By.ID, "match-count").text == "16"
    _screenshot(driver, "cohort")
    Select(driver.find_element(By.ID, "filter-essay_template")).select_by_value("essay-expand")
    _wait(driver, lambda d: "essay_template=essay-expand" in d.current_url)
    assert driver.find_element(By.ID, "match-count").text == "8"
    rows = driver.find_elements(By.CSS_SELECTOR, "#essays tbody tr")
    assert len(rows) == 8 and all("essay-expand" in row.text and "essay-copy" not in row.text for row in rows)

    # An essay, and one evaluation's full response expanded.
    rows[0].find_element(By.CSS_SELECTOR, "a.essay-link").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "essay-text"))
    details = driver.find_element(By.CSS_SELECTOR, "details.evaluation-response")
    response = details.find_element(By.TAG_NAME, "pre")
    assert not response.is_displayed()
    details.find_element(By.TAG_NAME, "summary").click()
    _wait(driver, lambda d: response.is_displayed())
    assert "SCORE" in response.text
    _screenshot(driver, "essay")

    # Blind rating queue, keyboard only once the name is in.
    queue = explorer.base + "/cohorts/demo/rate?blind=1&seed=7"
    driver.get(queue)
    assert not driver.find_elements(By.ID, "llm-scores")
    page = driver.page_source
    assert "eval-rubric" not in page and "essay-expand" not in page and "links-ideas" not in page
    rater = driver.find_element(By.ID, "rater")
    rater.send_keys("ada")
    rater.send_keys(Keys.ESCAPE)
    rated: dict[str, float] = {}
    for position, keys in enumerate((["7"], ["5"], ["1", "0"])):
        essay = driver.find_element(By.ID, "essay-text").get_attribute("data-essay")
        actions = ActionChains(driver)
        for key in keys:
            actions.send_keys(key)
        actions.send_keys(Keys.ENTER).perform()
        _wait(driver, lambda d, p=position: f"i={p + 1}" in d.current_url)
        rated[essay] = float("".join(keys))
    _screenshot(driver, "rate")

    # Reload: the ratings are kept, and the queue shows them.
    driver.get(queue + "&i=0")
    assert driver.find_element(By.ID, "saved-rating").text.startswith("Your rating: 7.0")
    assert "3 rated by ada" in driver.find_element(By.ID, "queue-position").text
    driver.get(queue + "&i=2")
    driver.refresh()
    assert driver.find_element(By.ID, "saved-rating").text.startswith("Your rating: 10.0")
    driver.get(explorer.base + "/cohorts/demo/ratings")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#ratings tbody tr")) == 3
    _screenshot(driver, "ratings")

    # The analysis reads them as evaluator human/ada, and the ratings page shows agreement.
    frame = ratings_frame(explorer.root, "demo")
    assert {(r["essay_gen_id"], r["evaluator"], r["score"], r["blind"]) for r in frame.iter_rows(named=True)} == {
        (essay, "human/ada", score, True) for essay, score in rated.items()}
    table = load_score_table(explorer.root, "demo").filter(pl.col("evaluator") == "human/ada")
    assert dict(table.select("essay_gen_id", "score").iter_rows()) == rated
    agreement = driver.find_elements(By.CSS_SELECTOR, "#agreement tbody tr")
    assert {row.find_elements(By.TAG_NAME, "td")[1].text for row in agreement} == {
        "eval-rubric/offline", "eval-overall/offline", "consensus"}
    assert all(row.find_elements(By.TAG_NAME, "td")[3].text == "3" for row in agreement)


def test_planted_payloads_execute_nothing(explorer: Explorer, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    driver = browser
    essay_page = f"{explorer.base}/cohorts/demo/essays/{explorer.hostile_essay}"
    driver.get(essay_page)
    driver.execute_script("document.querySelectorAll('details').forEach(function (d) { d.open = true; });")
    _no_script_ran(driver)
    text = driver.find_element(By.ID, "essay-text").text
    assert "<script>window.__pwned = 1</script>" in text and "</textarea><script>" in text
    assert "[click me](javascript:window.__pwned=3)" in text
    _screenshot(driver, "hostile-essay")

    # A note that tries to break out of its textarea, saved through the form and shown again.
    driver.find_element(By.ID, "rater").clear()
    driver.find_element(By.ID, "rater").send_keys("eve")
    driver.find_element(By.ID, "score").send_keys("3")
    driver.find_element(By.ID, "note").send_keys(HOSTILE_NOTE)
    driver.find_element(By.ID, "save-rating").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "saved-rating"))
    assert driver.find_element(By.ID, "note").get_attribute("value") == HOSTILE_NOTE
    _no_script_ran(driver)

    for path in (f"/cohorts/demo/compare?essays={explorer.hostile_essay},{explorer.essays[1]}",
                 "/cohorts/demo/ratings", "/cohorts/demo?q=pwned"):
        driver.get(explorer.base + path)
        _no_script_ran(driver)
    assert driver.find_element(By.ID, "match-count").text == "1"


def test_post_without_csrf_token_is_refused(explorer: Explorer, browser) -> None:  # noqa: ANN001
    driver = browser
    driver.get(f"{explorer.base}/cohorts/demo")
    url = f"/cohorts/demo/essays/{explorer.essays[1]}/rating"
    # Same origin, cookies included, but no token in the form.
    status = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', credentials: 'same-origin',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'rater=mallory&score=1'})"
        ".then(function (r) { done(r.status); }, function (e) { done(String(e)); });", url)
    assert status == 403
    request = urllib.request.Request(explorer.base + url, data=b"rater=mallory&score=1&csrf_token=abc", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert "mallory" not in set(ratings_frame(explorer.root, "demo")["rater"].to_list())


@pytest.mark.parametrize("path", ["/cohorts/demo/essays/..%2F..%2F..%2Fcombo_mappings.csv",
                                  "/cohorts/..%2F1_raw/essays/x", "/cohorts/demo/essays/..", "/static/..%2F..%2Fapp.py"])
def test_dot_dot_is_a_404(explorer: Explorer, path: str) -> None:
    parts = urlsplit(explorer.base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode(errors="replace")
    connection.close()
    assert response.status == 404, body
    assert "combo_id" not in body and "concept_id" not in body


def _http(port: int, path: str, *, host: str | None = None, cookie: str | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if cookie:
        headers["Cookie"] = cookie
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_allow_remote_serves_every_interface_only_with_the_printed_token(explorer: Explorer, tmp_path: Path) -> None:
    """`daydream view --host 0.0.0.0 --allow-remote` in a real process: the token it prints is
    the only way in, for the pages and the static files alike, whatever name the browser used."""
    port = free_port()
    log = tmp_path / "remote-view.log"
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "daydreaming_dagster", "view", "--host", "0.0.0.0", "--allow-remote",
             "--port", str(port), "--data-root", str(explorer.root)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        token = None
        while token is None and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text(errors="replace")
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("explorer: ") and "?token=" in line:
                    token = line.split("?token=", 1)[1].split()[0]
            time.sleep(0.2)
        assert token, log.read_text(errors="replace")
        text = log.read_text(errors="replace")
        assert f"http://0.0.0.0:{port}/?token=" in text and "serving beyond loopback" in text
        while time.monotonic() < deadline:
            try:
                _http(port, "/static/explorer.css")
                break
            except OSError:
                time.sleep(0.2)

        lan = f"192.0.2.10:{port}"  # any name the machine is reached by: the token decides
        assert _http(port, "/", host=lan).status == 401
        assert _http(port, "/cohorts/demo", host=lan).status == 401
        assert _http(port, "/static/explorer.css", host=lan).status == 401
        assert _http(port, "/cohorts/demo?token=wrong", host=lan).status == 401
        entered = _http(port, f"/cohorts/demo?token={token}", host=lan)
        assert entered.status == 303 and entered.getheader("Location") == "/cohorts/demo"
        cookie = entered.getheader("Set-Cookie").split(";", 1)[0]
        assert "httponly" in entered.getheader("Set-Cookie").lower()
        assert _http(port, "/cohorts/demo", host=lan, cookie=cookie).status == 200
        assert _http(port, f"/cohorts/demo/essays/{explorer.essays[1]}", host=lan, cookie=cookie).status == 200
        assert _http(port, "/cohorts/demo", host=lan, cookie=f"{ACCESS_COOKIE}=forged").status == 401
    finally:
        _stop_server(server)


def test_reading_flow_walks_the_filtered_table_searches_and_compares(explorer: Explorer, browser) -> None:  # noqa: ANN001
    """Issue 23: open the top essay, walk next/previous (keys n/p) through a filtered table,
    search a concept name, compare two essays and read both evaluators' reasons, type a
    half-point score."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver = browser
    cohort = explorer.base + "/cohorts/demo"

    def table_ids() -> list[str]:
        return [row.get_attribute("data-essay") for row in driver.find_elements(By.CSS_SELECTOR, "#essays tbody tr")]

    def current_essay() -> str:
        return driver.current_url.split("/essays/", 1)[1].split("?", 1)[0]

    # The top essay: its title is the first, linked column and the essay page's heading.
    driver.get(cohort)
    first_row = driver.find_element(By.CSS_SELECTOR, "#essays tbody tr")
    title = first_row.find_element(By.CSS_SELECTOR, "td.title a.essay-link")
    title_text, top = title.text, first_row.get_attribute("data-essay")
    assert title_text and not title_text.startswith("[synthetic")
    header = [th.get_attribute("data-column") for th in driver.find_elements(By.CSS_SELECTOR, "#essays thead th[data-column]")]
    assert header[0] == "title"
    assert "disagree" in driver.find_element(By.CSS_SELECTOR, 'th[data-column="spread"]').get_attribute("title")
    title.click()
    _wait(driver, lambda d: d.find_elements(By.ID, "essay-title"))
    assert current_essay() == top and driver.find_element(By.ID, "essay-title").text == title_text
    assert driver.find_element(By.ID, "essay-position").text == "essay 1 of 16"

    # A filtered table, walked with n to the end and back with p, in the table's order.
    driver.get(cohort)
    Select(driver.find_element(By.ID, "filter-essay_template")).select_by_value("essay-expand")
    _wait(driver, lambda d: "essay_template=essay-expand" in d.current_url)
    order = table_ids()
    assert len(order) == 8
    driver.find_element(By.CSS_SELECTOR, "#essays tbody tr a.essay-link").click()
    walked = [current_essay()]
    for step in range(2, len(order) + 1):
        ActionChains(driver).send_keys("n").perform()
        _wait(driver, lambda d, n=step: f"essay {n} of 8" in d.find_element(By.ID, "essay-position").text)
        walked.append(current_essay())
        assert "essay_template=essay-expand" in driver.current_url
    assert walked == order and not driver.find_elements(By.ID, "next")
    _screenshot(driver, "essay-walk")
    for position in range(len(order) - 1, 0, -1):
        ActionChains(driver).send_keys("p").perform()
        _wait(driver, lambda d, p=position: f"essay {p} of 8" in d.find_element(By.ID, "essay-position").text)
        assert current_essay() == order[position - 1]
    driver.find_element(By.LINK_TEXT, "back to the table").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "essays"))
    assert table_ids() == order

    # A concept name shown in the table finds its essays.
    driver.get(cohort)
    search = driver.find_element(By.ID, "search")
    search.send_keys("tide pools")
    search.send_keys(Keys.ENTER)
    _wait(driver, lambda d: "q=tide+pools" in d.current_url)
    rows = driver.find_elements(By.CSS_SELECTOR, "#essays tbody tr")
    assert len(rows) == 4 and all("Tide pools" in row.text for row in rows)
    labels = [o.text for o in Select(driver.find_element(By.ID, "filter-combo_id")).options]
    assert "Error-correcting codes + Tide pools" in labels  # names, not hashes

    # Compare: one tick is refused in place (the tick stays); two show both evaluators' reasons.
    boxes = driver.find_elements(By.CSS_SELECTOR, "#essays tbody input[name=essays]")
    boxes[0].click()
    driver.find_element(By.ID, "compare-selected").click()
    _wait(driver, lambda d: "Tick 2 to 4" in d.find_element(By.ID, "compare-problem").text)
    assert "/compare" not in driver.current_url and boxes[0].is_selected()
    boxes[1].click()
    chosen = [rows[0].get_attribute("data-essay"), rows[1].get_attribute("data-essay")]
    driver.find_element(By.ID, "compare-selected").click()
    _wait(driver, lambda d: "/compare" in d.current_url and d.find_elements(By.ID, "compare-reasons"))
    columns = driver.find_elements(By.CSS_SELECTOR, "#compare-reasons .reasons-column")
    assert [c.get_attribute("data-essay") for c in columns] == chosen
    for column in columns:
        reasons = column.find_elements(By.CSS_SELECTOR, "details.reasons pre")
        assert len(reasons) == 2 and all(r.is_displayed() and "SCORE" in r.text for r in reasons)
    _screenshot(driver, "compare-reasons")

    # Half a point from the keyboard: 6 . 5 is 6.5.
    driver.get(f"{cohort}/essays/{chosen[0]}")
    rater = driver.find_element(By.ID, "rater")
    rater.clear()
    rater.send_keys("hal")
    rater.send_keys(Keys.ESCAPE)
    ActionChains(driver).send_keys("6").send_keys(".").send_keys("5").perform()
    assert driver.find_element(By.ID, "score").get_attribute("value") == "6.5"
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    _wait(driver, lambda d: d.find_elements(By.ID, "saved-rating"))
    assert driver.find_element(By.ID, "saved-rating").text.startswith("Your rating: 6.5")
