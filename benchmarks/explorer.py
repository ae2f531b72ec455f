"""Server time of the explorer's pages over a synthetic 10,000-essay cohort (issues 13 and 23).

Writes a cohort through the data layer (2,500 combinations × 2 draft templates × 2 essay
templates = 10,000 essays, 2 evaluations each; only the files the explorer reads, no fsync),
then requests each page in-process through Starlette's test client and prints the server time
the app reports in its ``Server-Timing`` header (the median of ``--repeat`` requests; the first
request of the cohort page also builds the cached cohort view and is printed separately).

Target: every page of a 10,000-essay cohort under 50 ms of server time once the cohort is
cached, and no GET (``?refresh=1`` included) rebuilds the cohort view: the store's build count
is printed before and after all the requests.

    uv run python benchmarks/explorer.py                    # 10,000 essays in a temporary dir
    uv run python benchmarks/explorer.py --essays 2000 --dir /dev/shm
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.web.support

from starlette.testclient import TestClient  # noqa: E402
from tests.web.support import write_synthetic_cohort  # noqa: E402

from daydreaming_dagster.results.human_ratings import HumanRating, append_rating  # noqa: E402
from daydreaming_dagster.web.app import ExplorerConfig, create_app  # noqa: E402
from daydreaming_dagster.web.security import Secrets  # noqa: E402

COHORT = "bench"


def _server_ms(response) -> float:  # noqa: ANN001 - httpx.Response
    assert response.status_code == 200, (response.status_code, response.text[:300])
    match = re.search(r"dur=([0-9.]+)", response.headers["server-timing"])
    assert match, response.headers
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--essays", type=int, default=10_000, help="essays in the cohort (multiple of 4)")
    parser.add_argument("--repeat", type=int, default=5, help="requests per page (median printed)")
    parser.add_argument("--dir", default=None, help="where to build the store (default: a temporary directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp) / "data"
        started = time.perf_counter()
        cohort = write_synthetic_cohort(root, COHORT, combos=max(1, args.essays // 4), fsync=False, complete=False)
        print(f"store: {len(cohort.essays)} essays, {len(cohort.drafts)} drafts, {len(cohort.evaluations)} "
              f"evaluations written in {time.perf_counter() - started:.1f} s ({root})")
        for index, essay in enumerate(cohort.essays[:200]):
            append_rating(root, COHORT, HumanRating(essay, "ada", float(index % 11), "0-10"))

        client = TestClient(create_app(ExplorerConfig(data_root=str(root), secrets=Secrets())),
                            base_url="http://127.0.0.1:8000")
        started = time.perf_counter()
        cold = _server_ms(client.get(f"/cohorts/{COHORT}"))
        print(f"{'cohort page, cold (builds the cached view)':<48} {cold:9.1f} ms  "
              f"(wall {time.perf_counter() - started:.1f} s)")

        store = client.app.state.store
        builds_before = store.builds
        essay, others = cohort.essays[len(cohort.essays) // 2], cohort.essays[:3]
        walk = "essay_template=essay-y&sort=score:rubric/m2&desc=1"
        pages = {
            "cohorts list": "/",
            "cohort page 1 (by rank)": f"/cohorts/{COHORT}",
            "cohort page 100": f"/cohorts/{COHORT}?page=100",
            "filter by essay template": f"/cohorts/{COHORT}?essay_template=essay-y",
            "filter by 2 axes, sort by mean": f"/cohorts/{COHORT}?essay_template=essay-y&draft_template=links-a&sort=mean&desc=1",
            "full-text search (1 hit)": f"/cohorts/{COHORT}?q=marker{len(cohort.essays) - 1}%20is",
            "full-text search (every essay)": f"/cohorts/{COHORT}?q=links%20two%20ideas",
            "sort by human mean": f"/cohorts/{COHORT}?sort=human_mean&desc=1",
            "full-text search (concept name)": f"/cohorts/{COHORT}?q=concept%20017",
            "sort by one evaluator's score": f"/cohorts/{COHORT}?sort=score:rubric/m1",
            "cohort page with ?refresh=1 (a GET: no rebuild)": f"/cohorts/{COHORT}?refresh=1",
            "essay page": f"/cohorts/{COHORT}/essays/{essay}",
            "essay page, previous/next in a filtered table": f"/cohorts/{COHORT}/essays/{essay}?{walk}",
            "compare 3 essays": f"/cohorts/{COHORT}/compare?essays={','.join(others)}",
            "rating queue (blind)": f"/cohorts/{COHORT}/rate?seed=7&i=5&rater=ada",
            "rating queue, end": f"/cohorts/{COHORT}/rate?seed=7&i={len(cohort.essays)}&rater=ada",
            "ratings (200)": f"/cohorts/{COHORT}/ratings",
        }
        worst = 0.0
        for name, url in pages.items():
            times = [_server_ms(client.get(url)) for _ in range(args.repeat)]
            median = statistics.median(times)
            worst = max(worst, median)
            print(f"{name:<48} {median:9.1f} ms  (min {min(times):.1f}, max {max(times):.1f})")
        rebuilt = store.builds - builds_before
        load = os.getloadavg()
        print(f"slowest cached page: {worst:.1f} ms (target < 50 ms); load average {load[0]:.2f} {load[1]:.2f}")
        print(f"cohort views built by the {len(pages) * args.repeat} GETs after the first: {rebuilt} (target 0)")
        # Not a cached page: the human-vs-LLM agreement is recomputed once after each rating.
        append_rating(root, COHORT, HumanRating(cohort.essays[-1], "bo", 3.0, "0-10"))
        fresh = _server_ms(client.get(f"/cohorts/{COHORT}"))
        print(f"{'cohort page after a new rating (agreement recomputed)':<48} {fresh:9.1f} ms")


if __name__ == "__main__":
    main()
