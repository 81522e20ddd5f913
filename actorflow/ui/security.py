"""The UI's defences: a token on every request, CSRF on every form, strict headers on every response.

* **Token.** When one is set (it must be, once the UI binds beyond loopback), every request
  carries it: ``Authorization: Bearer TOKEN``, or HTTP basic auth with the token as the
  password (any user name), so a browser asks for it once. Compared in constant time.
* **CSRF.** A random value in a ``SameSite=Strict``, ``HttpOnly`` cookie is repeated in a
  hidden field of every form (double submit); a POST whose field is missing or differs is
  refused with 403 before anything is read or changed, and so is one whose ``Origin`` is
  another site's.
* **Headers.** A Content-Security-Policy that allows only this server's own scripts,
  styles and images (no inline script or style, no framing), ``nosniff``, no referrer.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "Forbidden", "SecurityMiddleware", "checked_form"]

CSRF_COOKIE = "actorflow_csrf"
CSRF_FIELD = "csrf"

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Forbidden(Exception):
    """A request refused before it changed anything (403, with the reason)."""


def _token_given(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


class SecurityMiddleware(BaseHTTPMiddleware):
    """Checks the token, hands each browser its CSRF value, and sets the security headers."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, token: str | None) -> None:
        super().__init__(app)
        self._token = token

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Refuse a request without the token; otherwise serve it with the headers and the CSRF cookie."""
        if self._token is not None:
            given = _token_given(request)
            if given is None or not hmac.compare_digest(given.encode(), self._token.encode()):
                response: Response = PlainTextResponse(
                    "a token is required: Authorization: Bearer TOKEN, or basic auth with the token as password",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="actorflow", charset="UTF-8"'},
                )
                response.headers.update(HEADERS)
                return response
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = cookie is None or len(cookie) != 43  # noqa: PLR2004 - token_urlsafe(32)'s length
        request.state.csrf = secrets.token_urlsafe(32) if fresh else cookie
        response = await call_next(request)
        response.headers.update(HEADERS)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE, request.state.csrf, httponly=True, samesite="strict", secure=request.url.scheme == "https"
            )
        return response


async def checked_form(request: Request) -> FormData:
    """The POSTed form once its CSRF field matches the cookie and its origin is this site; else `Forbidden`."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        msg = f"cross-site request refused (Origin {origin})"
        raise Forbidden(msg)
    form = await request.form()
    cookie = request.cookies.get(CSRF_COOKIE)
    field = form.get(CSRF_FIELD)
    if not cookie or not isinstance(field, str) or not hmac.compare_digest(field.encode(), cookie.encode()):
        msg = "the form's CSRF token is missing or wrong: reload the page and try again"
        raise Forbidden(msg)
    return form
