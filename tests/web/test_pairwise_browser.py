"""Issue 20 in a real browser: headless Chromium (Selenium, Debian's chromium and
chromium-driver) opens the compare page of a judged pair, reads the judges' verdicts and reasons
(one shown to its judge in the other order), presses ``b`` and sees the preference on the page
and in ``human_comparisons.jsonl``; hostile judge text runs nothing (asserted on the DOM)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from daydreaming_dagster.results.human_comparisons import read_comparisons
from daydreaming_dagster.web.app import ExplorerConfig, create_app
from daydreaming_dagster.web.security import Secrets
from tests.support.browser import CHROMIUM_FLAGS
from tests.web.support import (
    HOSTILE_TEXT,
    PlannedComparison,
    serve_in_thread,
    write_comparisons,
    write_synthetic_cohort,
)

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        reason = ("chromium or chromedriver is not on PATH "
                  "(scripts/install_system_deps.sh installs Debian's chromium and chromium-driver)")
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests must run in CI, but: {reason}", pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, timeout: float = 15):  # noqa: ANN001, ANN202 - selenium types
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def test_read_the_judges_and_press_b_to_prefer_the_right_essay(
        data_root: Path, monkeypatch: pytest.MonkeyPatch, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    cohort = write_synthetic_cohort(data_root)
    x, y = cohort.essays[:2]
    write_comparisons(data_root, "c1", [
        PlannedComparison(x, y, "judge-1", "X is vivid; Y rambles.\nWINNER: A", "A"),
        PlannedComparison(y, x, "judge-1", "The first essay shown is stronger.\nWINNER: A", "A", round=2),
        PlannedComparison(x, y, "judge-2", HOSTILE_TEXT + "\nWINNER: B", "B", template_id="compare-novelty"),
    ])
    app = create_app(ExplorerConfig(data_root=str(data_root), secrets=Secrets()))
    driver = browser
    with serve_in_thread(app) as base:
        driver.get(f"{base}/cohorts/c1/compare?essays={x},{y}")
        _wait(driver, lambda d: d.find_elements(By.ID, "judge-verdicts"))
        verdicts = driver.find_elements(By.CSS_SELECTOR, "#judge-verdicts details.verdict")
        assert [(v.get_attribute("data-verdict"), v.get_attribute("data-swapped")) for v in verdicts] == [
            ("A", "0"), ("B", "0"), ("B", "1")]
        swapped = verdicts[2]
        assert "shown to the judge in the other order (it answered A)" in swapped.find_element(
            By.TAG_NAME, "summary").text
        assert "judge-1" in swapped.text and "round 2" in swapped.text
        reasons = [v.find_element(By.CSS_SELECTOR, "pre.judge-reasons").text for v in verdicts]
        assert reasons[0].startswith("X is vivid; Y rambles.")
        assert reasons[2].startswith("The first essay shown is stronger.")
        assert "<script>window.__pwned = 1</script>" in reasons[1]  # shown as text...
        assert driver.execute_script("return typeof window.__pwned") == "undefined"  # ...and never run
        counts = driver.execute_script("""return {
            script: document.querySelectorAll('#pairwise script').length,
            img: document.querySelectorAll('img').length,
            svg: document.querySelectorAll('svg').length,
            onerror: document.querySelectorAll('[onerror]').length};""")
        assert counts == {"script": 0, "img": 0, "svg": 0, "onerror": 0}
        assert "1 prefer A, 2 prefer B, 0 tie" in driver.find_element(By.ID, "judge-tally").text
        assert driver.find_elements(By.ID, "no-human-preferences")

        # The name once, then the keyboard: b = the right essay (B) is better.
        rater = driver.find_element(By.ID, "rater")
        rater.send_keys("ada")
        rater.send_keys(Keys.ESCAPE)
        ActionChains(driver).send_keys("b").perform()
        _wait(driver, lambda d: d.find_elements(By.ID, "saved-preference"))
        saved = driver.find_element(By.ID, "saved-preference")
        assert saved.get_attribute("data-preference") == "B"
        assert saved.text.startswith("Your preference: B: Essay number 1")
        row = driver.find_element(By.CSS_SELECTOR, '#human-preferences tr[data-rater="ada"]')
        assert row.get_attribute("data-preference") == "B" and "as here" in row.text
        assert driver.current_url == f"{base}/cohorts/c1/compare?essays={x}%2C{y}"
        driver.execute_script("document.getElementById('pairwise').scrollIntoView()")
        SCREENSHOTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / "compare-pairwise.png"))

        stored = read_comparisons(data_root, "c1")
        assert [(c.essay_a, c.essay_b, c.preference, c.rater) for c in stored.comparisons] == [(x, y, "B", "ada")]

        # Keys typed into a text field are text, not a preference.
        note = driver.find_element(By.ID, "preference-note")
        note.send_keys("a tie? ")
        assert len(read_comparisons(data_root, "c1").comparisons) == 1
        note.send_keys(Keys.ESCAPE)
        ActionChains(driver).send_keys("t").perform()
        _wait(driver, lambda d: d.find_element(By.ID, "saved-preference").get_attribute("data-preference") == "tie")
        latest = read_comparisons(data_root, "c1").comparisons[-1]
        assert (latest.preference, latest.note) == ("tie", "a tie? ")
