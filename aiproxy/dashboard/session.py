"""Dashboard login sessions: a signed, expiring token in an HttpOnly, SameSite=Strict cookie.

Stateless, so any instance behind a load balancer accepts a session another one issued: the
token is `base64url(expiry:nonce:subject).base64url(HMAC-SHA256)` under a key derived from
DASHBOARD_SESSION_SECRET, or from ADMIN_TOKEN when that is unset (every instance configured
alike derives the same key; rotating ADMIN_TOKEN ends every session). With neither set, the key
is random per process: sessions then last until a restart and only on the instance that issued
them. The subject is `admin-token` or `key:<key id>`; the caller re-checks it on every request,
so a revoked or demoted admin key ends its sessions within KEY_CACHE_TTL.

Logout deletes the cookie and records the token's nonce until its expiry, so the same token is
refused afterwards by this instance; other instances refuse it once it expires
(DASHBOARD_SESSION_TTL, default 8 h).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "aiproxy_dashboard"
_CONTEXT = b"aiproxy-dashboard-session-v1"


@dataclass(frozen=True)
class Session:
    subject: str
    expires: int
    nonce: str


def derive_key(session_secret: str, admin_token: str) -> bytes:
    seed = session_secret or admin_token
    raw = seed.encode() if seed else secrets.token_bytes(32)
    return hmac.new(raw, _CONTEXT, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    def __init__(self, key: bytes, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.ttl = ttl
        self._clock = clock
        self._ended: dict[str, int] = {}  # nonce -> expiry, of sessions logged out here

    def issue(self, subject: str) -> tuple[str, Session]:
        session = Session(subject, int(self._clock() + self.ttl), secrets.token_urlsafe(12))
        payload = f"{session.expires}:{session.nonce}:{subject}".encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}", session

    def verify(self, token: str | None) -> Session | None:
        """The session of a genuine, unexpired, not logged-out token; None otherwise."""
        if not token or len(token) > 512 or token.count(".") != 1:
            return None
        body, sig = token.split(".")
        try:
            payload, mac = _unb64(body), _unb64(sig)
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._sign(payload)):
            return None
        parts = payload.decode(errors="replace").split(":", 2)
        if len(parts) != 3:
            return None
        expires, nonce, subject = parts
        if not expires.isdigit() or int(expires) <= self._clock() or nonce in self._ended:
            return None
        return Session(subject, int(expires), nonce)

    def end(self, session: Session) -> None:
        now = self._clock()
        self._ended = {n: exp for n, exp in self._ended.items() if exp > now}
        self._ended[session.nonce] = session.expires

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()
