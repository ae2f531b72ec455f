"""Request guards of the explorer: CSRF tokens, the remote-access token, security headers.

- CSRF: each browser gets a random ``dd_csrf`` cookie (HttpOnly, SameSite=Strict); forms carry
  ``HMAC(server secret, cookie)`` in a hidden field. A POST is accepted only when both are
  present and match, and its ``Origin`` (when sent) is this server. Another site can neither
  read the field nor make the browser send the cookie.
- Remote access (``--allow-remote``): every request needs the access token, given once as
  ``?token=…`` (then kept in an HttpOnly cookie) or as the cookie itself.
- Headers: a Content-Security-Policy without inline scripts (the JS is served from /static),
  no framing, no sniffing, no referrer.
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
    "Secrets",
]

CSRF_COOKIE = "dd_csrf"
CSRF_FIELD = "csrf_token"
ACCESS_COOKIE = "dd_access"
ACCESS_PARAM = "token"

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
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
        return hmac.new(self.csrf_key, browser_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def csrf_ok(self, browser_id: str | None, submitted: str | None) -> bool:
        """Whether a form's CSRF field matches the browser's cookie."""
        if not browser_id or not submitted:
            return False
        return hmac.compare_digest(self.csrf_token(browser_id), submitted)

    def access_ok(self, presented: str | None) -> bool:
        """Whether a request may see the explorer (always, when no token is required)."""
        if self.access_token is None:
            return True
        return bool(presented) and hmac.compare_digest(self.access_token, presented or "")
