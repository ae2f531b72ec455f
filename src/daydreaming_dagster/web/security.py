"""Request guards of the explorer: CSRF tokens, the remote-access token, security headers.

- CSRF: each browser gets a random ``dd_csrf`` cookie (HttpOnly, SameSite=Strict); forms carry
  ``HMAC(server secret, cookie)`` in a hidden field. A POST is accepted only when both are
  present and match, and its ``Origin`` (when sent) is this server (:func:`same_origin`, checked
  before the body is read). Another site can neither read the field nor make the browser send
  the cookie.
- Bodies: a POST body larger than :data:`MAX_BODY_BYTES` is refused (413) before it is read.
- Remote access (``--allow-remote``): every request needs the access token, given once as
  ``?token=…`` (then kept in an HttpOnly cookie) or as the cookie itself.
- Headers: a Content-Security-Policy without inline scripts (the JS is served from /static) and
  without images (model text must not make the browser request anything), no framing, no
  sniffing, no referrer sent to other sites (``same-origin``: with ``no-referrer`` browsers send
  ``Origin: null`` on the explorer's own form POSTs, which the Origin check must refuse).
- Secrets are compared as bytes: a non-ASCII token, cookie or field is simply wrong, never an
  error.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

__all__ = [
    "ACCESS_COOKIE",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "SECURITY_HEADERS",
    "MAX_BODY_BYTES",
    "Secrets",
    "same_origin",
]

CSRF_COOKIE = "dd_csrf"
CSRF_FIELD = "csrf_token"
ACCESS_COOKIE = "dd_access"
ACCESS_PARAM = "token"
MAX_BODY_BYTES = 256 * 1024
"""Largest accepted POST body: a rating with a 10,000-character note, percent-encoded, fits."""

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'none'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class Secrets:
    """Per-server random secrets (new at each start: restarting the server logs everybody out)."""

    csrf_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    """Key of the CSRF field's HMAC."""
    access_token: str | None = None
    """Token a remote client must present (``None``: loopback only, no token needed)."""

    @classmethod
    def for_server(cls, *, require_token: bool) -> Secrets:
        return cls(access_token=secrets.token_urlsafe(24) if require_token else None)

    @staticmethod
    def new_browser_id() -> str:
        """A fresh value for the CSRF cookie."""
        return secrets.token_urlsafe(24)

    def csrf_token(self, browser_id: str) -> str:
        """The hidden-field value that goes with the browser's CSRF cookie."""
        return hmac.new(self.csrf_key, browser_id.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    def csrf_ok(self, browser_id: str | None, submitted: str | None) -> bool:
        """Whether a form's CSRF field matches the browser's cookie."""
        if not browser_id or not submitted:
            return False
        return _same_secret(self.csrf_token(browser_id), submitted)

    def access_ok(self, presented: str | None) -> bool:
        """Whether a request may see the explorer (always, when no token is required)."""
        if self.access_token is None:
            return True
        return bool(presented) and _same_secret(self.access_token, presented or "")


def _same_secret(expected: str, presented: str) -> bool:
    # compare_digest refuses non-ASCII str (TypeError); as bytes any input is just unequal.
    return hmac.compare_digest(expected.encode("utf-8", "replace"), presented.encode("utf-8", "replace"))


def same_origin(origin: str | None, fetch_site: str | None, scheme: str, host: str | None) -> bool:
    """Whether a state-changing request comes from this server's own pages.

    ``origin`` is the request's ``Origin`` header (browsers send it on every POST), compared with
    ``<scheme>://<host>`` from the request line and ``Host`` header; ``"null"`` (sandboxed frames,
    some redirects) is refused. A request without ``Origin`` (a script, curl) passes unless its
    ``Sec-Fetch-Site`` says another site sent it; it still needs the CSRF pair.
    """
    if origin is not None:
        return bool(host) and origin.strip().lower() == f"{scheme}://{host}".lower()
    return fetch_site in (None, "same-origin", "none")
