"""HTTP basic auth on every route, /health and the docs included.

Label Studio sends basic auth through `requests`, which encodes it in
Latin-1; browsers and curl send UTF-8. Both are accepted, so a password with
"ü" works from either (Settings refuses what Latin-1 cannot carry, and a user
name with ':', at start-up).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

CHALLENGE = {"WWW-Authenticate": 'Basic realm="ocr-backend", charset="UTF-8"'}


class BasicAuthMiddleware:
    def __init__(self, app: ASGIApp, *, username: str, password: str) -> None:
        self.app = app
        self.usernames = encodings(username)
        self.passwords = encodings(password)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.authorized(dict(scope["headers"])):
            response = JSONResponse(
                {"detail": "Authentication required: send the BASIC_AUTH_USER and "
                           "BASIC_AUTH_PASS this backend was started with."},
                status_code=401,
                headers=CHALLENGE,
            )  # fmt: skip
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, encoded = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Every form compared every time: timing tells nothing about which one was wrong.
        user_ok = [secrets.compare_digest(user, form) for form in self.usernames]
        password_ok = [secrets.compare_digest(password, form) for form in self.passwords]
        return bool(sep) and any(user_ok) and any(password_ok)


def encodings(text: str) -> tuple[bytes, ...]:
    """The bytes of `text` as Label Studio sends them (Latin-1) and as curl does (UTF-8)."""
    try:
        return text.encode("utf-8"), text.encode("latin-1")
    except UnicodeEncodeError:
        return (text.encode("utf-8"),)
