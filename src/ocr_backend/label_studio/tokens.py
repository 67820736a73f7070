"""Label Studio's two kinds of token, sent to Label Studio's own host and nowhere else.

A legacy key goes as `Authorization: Token <key>`. A personal access token is
a JWT refresh token: it is exchanged at `/api/token/refresh/` for a short-lived
access token sent as `Authorization: Bearer <access>`, kept until shortly
before it expires, and exchanged again once when Label Studio answers 401.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx

from ..errors import LabelStudioError
from ..images.fetch import error_detail

# Three base64url segments: how a JWT looks. Legacy keys are 40 hex digits.
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
DEFAULT_PORTS = {"http": 80, "https": 443}
CREATE_PAT = "create one in Label Studio under Account & Settings > Personal Access Token"


def origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    """Scheme, host and port: what must match for a token to be sent."""
    url = httpx.URL(url)
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


def is_jwt(token: str) -> bool:
    return bool(JWT_SHAPE.match(token))


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: only Label Studio checks the signature."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def renewal_delay(access: str) -> float:
    """Seconds to keep an access token: its lifetime less a margin.

    The lifetime is `exp - iat`, both on Label Studio's clock, so a skewed
    clock here does not make every request refresh or use expired tokens.
    """
    claims = jwt_claims(access)
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float):
        return 60.0
    lifetime = exp - iat if isinstance(iat, int | float) else exp - time.time()
    return max(0.0, lifetime - min(30.0, lifetime * 0.2))


class LabelStudioAuth(httpx.Auth):
    """Adds the token to requests for Label Studio's host; other hosts get nothing.

    httpx applies it to the first request only, and drops Authorization itself
    when a redirect leaves the origin (the presign endpoint redirects to the
    storage's host); tests/test_label_studio_images.py checks both.
    """

    def __init__(self, host: str, token: str, client: httpx.AsyncClient, *, source: str) -> None:
        self.host = host
        self.origin = origin(host)
        self.token = token
        self.source = source  # where the token came from, to name it in messages
        self.client = client
        claims = jwt_claims(token) if is_jwt(token) else None
        if claims is None:
            self.kind = "legacy"
        elif claims.get("token_type") == "access":
            self.kind = "access"  # usable until it expires, cannot be refreshed
        else:
            self.kind = "personal"
        self._access: str | None = token if self.kind == "access" else None
        self._renew_at = float("inf")
        self._lock = asyncio.Lock()
        self.exchanges = 0

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("LabelStudioAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if origin(request.url) != self.origin:
            yield request
            return
        if self.kind == "legacy":
            request.headers["Authorization"] = f"Token {self.token}"
            yield request
            return
        access = await self.access_token()
        request.headers["Authorization"] = f"Bearer {access}"
        response = yield request
        if (
            response.status_code == 401
            and self.kind == "personal"
            and origin(response.request.url) == self.origin
        ):
            # Revoked early or expired sooner than its exp said: exchange once more, retry once.
            request.headers["Authorization"] = f"Bearer {await self.access_token(stale=access)}"
            yield request

    async def access_token(self, stale: str | None = None) -> str:
        """The current access token; one exchange at a time, however many tasks wait for it."""
        async with self._lock:
            if self._access is not None and (
                self.kind == "access"
                or (self._access != stale and time.monotonic() < self._renew_at)
            ):
                return self._access
            self._access = await self._exchange()
            self._renew_at = time.monotonic() + renewal_delay(self._access)
            return self._access

    async def _exchange(self) -> str:
        url = f"{self.host}/api/token/refresh/"
        self.exchanges += 1
        try:
            # No redirects: the body carries the token, and must not be re-posted elsewhere.
            response = await self.client.post(
                url, json={"refresh": self.token}, follow_redirects=False
            )
        except httpx.TimeoutException:
            raise LabelStudioError(
                f"Label Studio at {self.host} did not answer the token exchange at "
                "/api/token/refresh/ in time; is LABEL_STUDIO_HOST right and Label Studio up?"
            ) from None
        except httpx.HTTPError as exc:
            raise LabelStudioError(
                f"cannot reach Label Studio at {self.host} to exchange the personal access token: "
                f"{str(exc) or type(exc).__name__}; is LABEL_STUDIO_HOST right?"
            ) from None
        if response.status_code in (400, 401):
            raise LabelStudioError(
                f"Label Studio at {self.host} refused the personal access token in "
                f"{self.source} ({await error_detail(response)}): it is expired, revoked or "
                f"from another Label Studio; {CREATE_PAT}"
            )
        try:
            access = response.json().get("access") if response.status_code == 200 else None
        except (ValueError, AttributeError):
            access = None
        if not isinstance(access, str) or not access:
            raise LabelStudioError(
                f"{self.host}/api/token/refresh/ answered HTTP {response.status_code} without "
                "an access token; is LABEL_STUDIO_HOST a Label Studio with personal access tokens?"
            )
        return access
