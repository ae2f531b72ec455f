"""Model text is untrusted input: Markdown rendered without raw HTML, links only to safe schemes,
and no images.

Everything else a page shows is escaped by Jinja2's autoescaping; this module is the one place
where model text becomes HTML. An image would make every reader's browser request its URL as
soon as the page opens (a tracking pixel, or a same-origin URL the explorer would serve): images
are shown as text (``[image: alt <url>]``), so rendered model text makes no request at all.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

__all__ = ["SAFE_LINK_SCHEMES", "is_safe_link", "render_markdown"]

SAFE_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
"""Schemes a rendered link or image may use; relative links (no scheme) are allowed too."""


def is_safe_link(url: str) -> bool:
    """True for relative URLs and ``http``/``https``/``mailto`` ones (so never ``javascript:``,
    ``data:``, ``vbscript:`` or ``file:``, whatever their spelling)."""
    # Browsers ignore ASCII control characters and whitespace inside a scheme ("java\tscript:").
    cleaned = "".join(ch for ch in url if ch > " " and ch != "\x7f")
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return False
    if scheme:
        return scheme in SAFE_LINK_SCHEMES
    return ":" not in cleaned.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # CommonMark with raw HTML off: "<script>" in model text stays text.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = is_safe_link  # a rejected link renders as plain text
    md.add_render_rule("image", _image_as_text)
    return md


def _image_as_text(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env)
    src = token.attrGet("src") or ""
    return f'<span class="image-as-text">[image: {escape(alt)} &lt;{escape(src)}&gt;]</span>'


def render_markdown(text: str) -> Markup:
    """Render model-written Markdown to safe HTML (raw HTML escaped, unsafe links dropped)."""
    return Markup(_parser().render(text or ""))
