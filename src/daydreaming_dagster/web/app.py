"""The explorer's Starlette app: server-rendered pages over the results layer (docs/explorer.md).

Pages (stable URLs, linked from the report):

- ``/`` cohorts with counts, cost and status;
- ``/cohorts/<id>`` the essay table (filter, sort, search, pages);
- ``/cohorts/<id>/essays/<essay_gen_id>`` one essay with its lineage and evaluations;
- ``/cohorts/<id>/compare?essays=a,b[,c]`` essays side by side; for two essays, the judges'
  pairwise verdicts and reasons and the human preferences, and a form to record one
  (``POST /cohorts/<id>/compare/preference``);
- ``/cohorts/<id>/rate`` the rating queue (seeded order, blind by default);
- ``/cohorts/<id>/ratings`` the human ratings given so far.

Ids from URLs are checked with :func:`~..ids.is_valid_gen_id` before anything touches the
disk: a bad id, an unknown cohort or essay is a 404. Other bad input (a query value that is not
a number, a cohort whose files cannot be read) is a 400 page saying what was wrong.

No GET rebuilds a cohort view: it is rebuilt in the background when the files it was read from
changed (:class:`~.data.ExplorerStore`), or on ``POST /cohorts/<id>/refresh`` (the *reload
data* button, CSRF-checked), so neither a URL in model text nor another site can make the server
rebuild a cohort, and no page waits for a rebuild.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, PackageLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import DaydreamError
from ..ids import is_valid_gen_id
from ..results.cohort import CohortNotFoundError
from ..results.human_comparisons import HumanComparison, HumanComparisonError, append_comparison
from ..results.human_ratings import HumanRating, HumanRatingError, append_rating
from ..results.scales import scale_bounds
from .data import (
    ESSAY_AXES,
    TABLE_PARAMS,
    Agreement,
    CohortView,
    EssayQuery,
    ExplorerStore,
    blind_order,
    column_help,
    essay_detail,
    essay_neighbours,
    query_essays,
    rater_scores,
)
from .rendering import render_markdown
from .security import (
    ACCESS_COOKIE,
    ACCESS_PARAM,
    CSRF_COOKIE,
    CSRF_FIELD,
    MAX_BODY_BYTES,
    SECURITY_HEADERS,
    Secrets,
    same_origin,
)

__all__ = ["ExplorerConfig", "create_app"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
RATER_COOKIE = "dd_rater"
MAX_COMPARE = 4
MAX_SEED_DIGITS = 9
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class ExplorerConfig:
    """How one explorer server runs."""

    data_root: str
    secrets: Secrets
    """CSRF key and, for remote access, the access token."""
    allow_remote: bool = False
    """False: only loopback Host headers are answered (blocks DNS-rebinding pages)."""
    dagster_url: str | None = None
    """Base URL of a Dagster UI, to link generations to their partition pages."""


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("daydreaming_dagster.web", "templates"), autoescape=True)
    env.filters["markdown"] = render_markdown
    env.filters["num"] = _num
    env.filters["score"] = lambda v: "" if v is None else f"{float(v):g}"
    env.filters["usd"] = lambda v: "" if v is None else f"${v:.4f}"
    return env


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# -- request helpers -------------------------------------------------------------------------
def _valid_id(value: str) -> str:
    if not is_valid_gen_id(value):
        raise HTTPException(404, "no such page")
    return value


def _store(request: Request) -> ExplorerStore:
    return request.app.state.store


def _cohort(request: Request, refresh: bool = False) -> CohortView:
    cohort_id = _valid_id(request.path_params["cohort_id"])
    try:
        view = _store(request).cohort(cohort_id, refresh=refresh)
        request.state.cohort_problem = _store(request).problem(cohort_id)
        return view
    except CohortNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except (DaydreamError, ValueError, OSError) as exc:
        # A malformed membership.csv or manifest: say which file and what is wrong with it.
        raise HTTPException(400, f"cohort {cohort_id} cannot be read: {exc}") from None


def _flag(request: Request, name: str, default: bool = False) -> bool:
    value = request.query_params.get(name)
    return default if value is None else value not in ("", "0", "false", "no")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _qs(params: dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from ``params`` updated with ``changes`` (``None`` drops a key)."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else "?"


def _rater(request: Request) -> str:
    return (request.query_params.get("rater") or request.cookies.get(RATER_COOKIE) or "").strip()


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    config: ExplorerConfig = request.app.state.config
    template = request.app.state.templates.get_template(name)
    csrf = config.secrets.csrf_token(request.state.browser_id)
    body = template.render(request=request, csrf_field=CSRF_FIELD, csrf_token=csrf, qs=_qs,
                           dagster_url=config.dagster_url,
                           cohort_problem=getattr(request.state, "cohort_problem", None), **context)
    return HTMLResponse(body, status_code=status_code)


# -- pages -----------------------------------------------------------------------------------
def index(request: Request) -> Response:
    cohorts = _store(request).summaries()
    return _page(request, "index.html", cohorts=cohorts, data_root=str(_store(request).data_root))


def _table_query(request: Request) -> EssayQuery:
    """The essay table's filters, search, sort and page from the URL."""
    params = request.query_params
    return EssayQuery(
        filters={axis: params[axis] for axis in ESSAY_AXES if params.get(axis)},
        search=params.get("q", ""),
        sort=params.get("sort", "rank"),
        descending=_flag(request, "desc"),
        page=_int(params.get("page"), 1),
    )


def _table_params(request: Request) -> dict[str, str]:
    """The parameters that define the table's rows and order (carried to essay pages and back)."""
    return {k: request.query_params[k] for k in TABLE_PARAMS if request.query_params.get(k)}


def _essay_href(cohort_id: str, table: dict[str, Any]) -> Any:
    """``href(essay_gen_id)``: an essay's page, remembering the table it was opened from."""
    suffix = _qs(table) if table else ""
    return lambda essay_gen_id: f"/cohorts/{cohort_id}/essays/{essay_gen_id}{suffix if suffix != '?' else ''}"


def cohort_page(request: Request) -> Response:
    view = _cohort(request)
    query = _table_query(request)
    ratings = _store(request).current_ratings(view.cohort_id)
    page = query_essays(view, query, ratings)
    params = dict(request.query_params)
    columns = ["title", "rank", "mean"]
    if view.has_analysis:
        columns += ["ci_low", "ci_high", "p_top_5"]
    columns += [*view.evaluator_columns, "n", "spread", "human_mean", "human_n", "concepts",
                *(axis for axis in ESSAY_AXES if axis != "combo_id" and len(view.levels[axis]) > 1),
                "status", "essay_gen_id"]
    return _page(request, "cohort.html", view=view, page=page, query=query, params=params,
                 columns=columns, column_help=column_help, axes=view.axis_levels(), summary=view.summary,
                 n_ratings=ratings.height, agreement=_agreement(request, view),
                 essay_href=_essay_href(view.cohort_id, _table_params(request)),
                 selected=set(request.query_params.getlist("essays")), max_compare=MAX_COMPARE)


def essay_page(request: Request) -> Response:
    view = _cohort(request)
    essay_id = _valid_id(request.path_params["essay_gen_id"])
    try:
        detail = essay_detail(view, essay_id)
    except KeyError:
        raise HTTPException(404, f"essay {essay_id} is not in cohort {view.cohort_id}") from None
    blind = _flag(request, "blind")
    rater = _rater(request)
    ratings = _store(request).current_ratings(view.cohort_id)
    mine = rater_scores(ratings, rater).get(essay_id)
    table = _table_params(request)
    query = _table_query(request)
    neighbours = essay_neighbours(view, query, ratings, essay_id)
    walk = {**table, "blind": "1" if blind else None}
    back = f"/cohorts/{view.cohort_id}" + _qs(table, page=neighbours.page if neighbours and neighbours.page > 1 else None)
    return _page(request, "essay.html", view=view, detail=detail, blind=blind, rater=rater, mine=mine,
                 scale=view.scale, bounds=scale_bounds(view.scale), neighbours=neighbours,
                 essay_href=_essay_href(view.cohort_id, walk), table=table, back_url=back.rstrip("?"),
                 open_reasons=request.query_params.get("reasons", ""),
                 next_url=request.url.path + (("?" + request.url.query) if request.url.query else ""))


def _compare_ids(request: Request) -> list[str]:
    wanted: list[str] = []
    for value in request.query_params.getlist("essays"):
        wanted += [part.strip() for part in value.split(",") if part.strip()]
    return list(dict.fromkeys(wanted))


def compare_page(request: Request) -> Response:
    """Two to four essays side by side, each with its evaluators' scores and reasons; for two
    essays also the pairwise verdicts of the cohort's judges (either order shown, translated to
    this page's sides), the human preferences recorded for the pair, and the preference form.

    With another number of essays the page keeps the selection (ticked, with titles) and says
    what to change, instead of losing it.
    """
    view = _cohort(request)
    wanted = _compare_ids(request)
    details = []
    for essay_id in wanted:
        _valid_id(essay_id)
        try:
            details.append(essay_detail(view, essay_id))
        except KeyError:
            raise HTTPException(404, f"essay {essay_id} is not in cohort {view.cohort_id}") from None
    context = _compare_context(request, view, details)
    if not 2 <= len(details) <= MAX_COMPARE:
        problem = (f"Compare takes 2 to {MAX_COMPARE} essays; {len(details)} selected: "
                   + ("untick some below." if len(details) > MAX_COMPARE else "tick more in the essay table."))
        return _page(request, "compare.html", status_code=400, problem=problem, **context)
    return _page(request, "compare.html", problem=None, **context)


def _compare_context(request: Request, view: CohortView, details: list[Any]) -> dict[str, Any]:
    """What the compare page shows; ``pair`` (judges' verdicts, human preferences) for two essays."""
    ids = ",".join(d.essay.gen_id for d in details)
    context: dict[str, Any] = {"view": view, "details": details, "blind": _flag(request, "blind"),
                               "max_compare": MAX_COMPARE, "ids": ids, "pair": None}
    if len(details) == 2:
        rater = _rater(request)
        human = _store(request).human_comparisons(view.cohort_id)
        pair = view.pair(details[0].essay.gen_id, details[1].essay.gen_id, human)
        mine = next((h for h in pair.humans if h.record.rater == rater and not h.swapped), None)
        query = {"essays": ids, "blind": "1" if context["blind"] else None}
        context.update(pair=pair, rater=rater, mine=mine, skipped_preferences=human.skipped_lines,
                       titles=view.titles, next_url=f"/cohorts/{view.cohort_id}/compare" + _qs(query))
    return context


def rate_page(request: Request) -> Response:
    view = _cohort(request)
    params = dict(request.query_params)
    seed = params.get("seed")
    if not seed:
        # A fresh seed in the URL: the order is random, and the link can be shared and reloaded.
        fresh = {**params, "seed": str(random.SystemRandom().randrange(1, 1_000_000)), "blind": params.get("blind", "1")}
        return RedirectResponse(request.url.path + _qs(fresh), status_code=303)
    # str.isdigit accepts "²" and int() refuses 5,000 digits: only short ASCII digit strings.
    if not (seed.isascii() and seed.isdigit() and len(seed) <= MAX_SEED_DIGITS):
        shown = seed if len(seed) <= 20 else seed[:20] + "…"
        raise HTTPException(400, f"seed {shown!r} is not a whole number of 1 to {MAX_SEED_DIGITS} digits "
                                 "(0-9); leave it out to get a fresh one")
    order = blind_order(view, int(seed))
    blind = _flag(request, "blind", default=True)
    rater = _rater(request)
    ratings = _store(request).current_ratings(view.cohort_id)
    mine = rater_scores(ratings, rater)
    rated = sum(1 for essay_id in order if essay_id in mine)
    unrated = [i for i, essay_id in enumerate(order) if essay_id not in mine]
    common = {"view": view, "order": order, "blind": blind, "rater": rater, "params": params, "rated": rated,
              "scale": view.scale, "bounds": scale_bounds(view.scale), "unrated": unrated}
    if "i" in params:
        # Past the last essay (i == len(order), where saving the last one leads) is the end.
        position = min(max(0, _int(params.get("i"), 0)), len(order))
    else:  # a returning rater starts at the first essay they have not rated yet, or at the end
        position = unrated[0] if unrated and rater else (0 if not rater else len(order))
    if position >= len(order):
        return _page(request, "rate.html", detail=None, position=len(order), mine=None, next_url="", **common)
    detail = essay_detail(view, order[position])
    next_params = {**params, "i": str(position + 1)}
    return _page(request, "rate.html", detail=detail, position=position, mine=mine.get(order[position]),
                 next_url=request.url.path + _qs(next_params), **common)


def ratings_page(request: Request) -> Response:
    view = _cohort(request)
    store = _store(request)
    current = store.current_ratings(view.cohort_id).sort(["timestamp", "rater"], descending=[True, False])
    skipped = store.ratings(view.cohort_id).skipped_lines
    return _page(request, "ratings.html", view=view, ratings=current.to_dicts(), skipped=skipped,
                 agreement=_agreement(request, view))


def _agreement(request: Request, view: CohortView) -> Agreement:
    return _store(request).agreement(view)


async def _checked_form(request: Request) -> dict[str, str] | Response:
    """The POSTed form, read only after the cheap checks (size, CSRF cookie) and accepted only
    with a matching CSRF field; else the refusal to send."""
    config: ExplorerConfig = request.app.state.config
    if not request.cookies.get(CSRF_COOKIE):
        return _csrf_refused()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _too_large()
    form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    if not config.secrets.csrf_ok(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        return _csrf_refused()
    return form


def _csrf_refused() -> Response:
    return PlainTextResponse("refused: missing or invalid CSRF token (reload the page and submit again)",
                             status_code=403)


def _too_large() -> Response:
    return PlainTextResponse(f"refused: request body over {MAX_BODY_BYTES // 1024} KiB", status_code=413)


async def refresh_cohort(request: Request) -> Response:
    """``POST /cohorts/<id>/refresh``: re-read the cohort from disk, then back to its table."""
    form = await _checked_form(request)
    if isinstance(form, Response):
        return form
    view = await run_in_threadpool(_cohort, request, True)
    return RedirectResponse(_local_target(form.get("next", ""), f"/cohorts/{view.cohort_id}"), status_code=303)


def _local_target(target: str, fallback: str) -> str:
    """``target`` when it is a path on this server, else ``fallback`` (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    return target


async def rate_essay(request: Request) -> Response:
    config: ExplorerConfig = request.app.state.config
    form = await _checked_form(request)
    if isinstance(form, Response):
        return form
    view = await run_in_threadpool(_cohort, request)
    essay_id = _valid_id(request.path_params["essay_gen_id"])
    if not view.has_essay(essay_id):
        raise HTTPException(404, f"essay {essay_id} is not in cohort {view.cohort_id}")
    try:
        score = float(form.get("score", ""))
    except ValueError:
        raise HTTPException(400, f"score {form.get('score', '')!r} is not a number on the scale {view.scale}") from None
    rating = HumanRating(
        essay_gen_id=essay_id,
        rater=form.get("rater", ""),
        score=score,
        scale=view.scale,
        note=form.get("note", ""),
        blind=form.get("blind", "") not in ("", "0"),
    )
    try:
        stored = await run_in_threadpool(append_rating, config.data_root, view.cohort_id, rating)
    except HumanRatingError as exc:
        raise HTTPException(400, str(exc)) from None
    target = _local_target(form.get("next", ""), f"/cohorts/{view.cohort_id}/essays/{essay_id}")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(RATER_COOKIE, stored.rater, max_age=365 * 86400, samesite="strict",
                        path="/", httponly=True)
    return response


async def record_preference(request: Request) -> Response:
    """``POST /cohorts/<id>/compare/preference``: store a person's preference between two essays
    of the cohort (A = shown left, B = right, or tie) in ``human_comparisons.jsonl``, then back to
    the compare page. Same guards as a rating (origin, size, CSRF); essays that are not essays of
    the cohort, or a preference other than A, B, tie, are a 400 that says so."""
    config: ExplorerConfig = request.app.state.config
    form = await _checked_form(request)
    if isinstance(form, Response):
        return form
    view = await run_in_threadpool(_cohort, request)
    essays = [form.get("essay_a", "").strip(), form.get("essay_b", "").strip()]
    for side, essay_id in zip(("essay_a", "essay_b"), essays, strict=True):
        if not essay_id:
            raise HTTPException(400, f"{side} is missing: the form names the two essays compared")
        if not is_valid_gen_id(essay_id) or not view.has_essay(essay_id):
            shown = essay_id if len(essay_id) <= 80 else essay_id[:80] + "…"
            raise HTTPException(400, f"{side} {shown!r} is not an essay of cohort {view.cohort_id}")
    record = HumanComparison(essay_a=essays[0], essay_b=essays[1], preference=form.get("preference", ""),
                             rater=form.get("rater", ""), note=form.get("note", ""))
    try:
        stored = await run_in_threadpool(append_comparison, config.data_root, view.cohort_id, record)
    except HumanComparisonError as exc:
        raise HTTPException(400, str(exc)) from None
    fallback = f"/cohorts/{view.cohort_id}/compare?essays={stored.essay_a},{stored.essay_b}"
    response = RedirectResponse(_local_target(form.get("next", ""), fallback), status_code=303)
    response.set_cookie(RATER_COOKIE, stored.rater, max_age=365 * 86400, samesite="strict",
                        path="/", httponly=True)
    return response


async def error_page(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else f"internal error ({type(exc).__name__}): {exc}"
    # An unexpected exception is answered outside GuardMiddleware: the headers are set here too.
    if not hasattr(request.state, "browser_id"):
        return _secured(PlainTextResponse(str(detail), status_code=status))
    return _secured(_page(request, "error.html", status_code=status, status=status, detail=detail))


# -- middleware ------------------------------------------------------------------------------
class GuardMiddleware(BaseHTTPMiddleware):
    """Access token, CSRF cookie and security headers on every response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        config: ExplorerConfig = request.app.state.config
        secrets = config.secrets
        token = request.query_params.get(ACCESS_PARAM)
        if secrets.access_token is not None:
            if token is not None and secrets.access_ok(token):
                # Keep the token in a cookie and drop it from the address bar (and history).
                response: Response = RedirectResponse(_without_token(request), status_code=303)
                response.set_cookie(ACCESS_COOKIE, token, httponly=True, samesite="strict", path="/")
                return _secured(response)
            if not secrets.access_ok(request.cookies.get(ACCESS_COOKIE)):
                return _secured(PlainTextResponse(
                    "this explorer needs the access token printed by `daydream view` at start-up: "
                    "open the URL with ?token=…", status_code=401))
        if request.method not in SAFE_METHODS:
            refusal = _unsafe_request_refusal(request)
            if refusal is not None:
                return _secured(refusal)
        browser_id = request.cookies.get(CSRF_COOKIE)
        fresh = not browser_id or len(browser_id) > 100 or not browser_id.isascii()
        request.state.browser_id = Secrets.new_browser_id() if fresh else browser_id
        started = time.perf_counter()
        response = await call_next(request)
        # Server time of the page, for the browser's dev tools and benchmarks/explorer.py.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        if fresh:
            response.set_cookie(CSRF_COOKIE, request.state.browser_id, httponly=True, samesite="strict", path="/")
        return _secured(response)


def _without_token(request: Request) -> str:
    """The request's own path and query without ``token``: a path on this server whatever the
    request line held (``//evil.example/`` becomes ``/evil.example/``), every repeated
    parameter kept."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode("utf-8")
    path = "/" + raw_path.decode("latin-1").lstrip("/\\")
    path = quote(path, safe="/%:@!$&'()*+,;=-._~")
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != ACCESS_PARAM]
    return path + ("?" + urlencode(kept) if kept else "")


def _unsafe_request_refusal(request: Request) -> Response | None:
    """Refuse a POST from another origin, or one announcing a body over the limit, before its
    body is read (the body's own size is checked again while it is read)."""
    if not same_origin(request.headers.get("origin"), request.headers.get("sec-fetch-site"),
                       request.url.scheme, request.headers.get("host")):
        return PlainTextResponse(f"refused: cross-origin request (Origin {request.headers.get('origin')!r} "
                                 "is not this server)", status_code=403)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit()
                                 or len(declared) > 12 or int(declared) > MAX_BODY_BYTES):
        return _too_large()
    return None


def _secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def create_app(config: ExplorerConfig) -> Starlette:
    """The explorer app over ``config.data_root``."""
    routes = [
        Route("/", index),
        Route("/cohorts/{cohort_id}", cohort_page),
        Route("/cohorts/{cohort_id}/refresh", refresh_cohort, methods=["POST"]),
        Route("/cohorts/{cohort_id}/essays/{essay_gen_id}", essay_page),
        Route("/cohorts/{cohort_id}/essays/{essay_gen_id}/rating", rate_essay, methods=["POST"]),
        Route("/cohorts/{cohort_id}/compare", compare_page),
        Route("/cohorts/{cohort_id}/compare/preference", record_preference, methods=["POST"]),
        Route("/cohorts/{cohort_id}/rate", rate_page),
        Route("/cohorts/{cohort_id}/ratings", ratings_page),
        Mount("/static", app=StaticFiles(directory=_STATIC_DIR), name="static"),
    ]
    middleware = [Middleware(GuardMiddleware)]
    if not config.allow_remote:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS)))
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: error_page, Exception: error_page})
    app.state.config = config
    app.state.store = ExplorerStore(config.data_root)
    app.state.templates = _templates()
    return app
