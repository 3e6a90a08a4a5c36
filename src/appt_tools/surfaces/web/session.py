"""Who may use the dashboard, and protection against cross-site requests.

Open (no sign-in) exactly when the rest of the HTTP app is open: bound to loopback with no HTTP API
key configured. Otherwise the owner signs in by pasting one of the HTTP API keys; it is checked with
`auth.key_matches` against the keys `auth.CredentialChecker` holds (re-read every 5 s), and never stored in the
cookie: the session remembers only an HMAC of it, so revoking a key ends its sessions within 5 s.

The session cookie `appt_session` is signed and timestamped by itsdangerous (`URLSafeTimedSerializer`,
HMAC-SHA256) with a secret drawn at random once and kept in the database (`Store.setting_once`), so
sessions outlive a restart and every server sharing the database (several instances behind a load
balancer) accepts them. A cookie that is tampered with, signed with another secret, malformed or older
than 12 hours reads as signed out. It is HttpOnly, SameSite=Strict and Secure over https.

Each session has a random id. Signing out records that id as ended in the database (`Store.end_session`),
and every server sharing the database then refuses the cookie, although its signature is still valid:
a copied cookie is worthless after sign-out. Revoking the key a session was made with ends it too.

Every change is a POST that must carry the session's CSRF token (header `X-CSRF-Token`, or the `csrf`
form field), compared in constant time; a POST whose Origin is not this server's, or that the
browser marks as cross-site (`Sec-Fetch-Site`), is refused before anything runs. While open on
loopback, a request for any host name but 127.0.0.1, localhost or [::1] is refused (DNS rebinding).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from appt_tools.surfaces.auth import CredentialChecker, asks_for_loopback, key_matches
from appt_tools.surfaces.web.tenancy import Keyring, KeyringSource

COOKIE = "appt_session"
LIFETIME_SECONDS = 12 * 60 * 60
CSRF_HEADER = "x-csrf-token"
SALT = "appt-tools.dashboard-session"  # keeps these signatures apart from anything else the secret signs


@dataclass(frozen=True)
class Session:
    csrf: str
    key_tag: str | None  # HMAC of the API key signed in with; None before sign-in (or while open)
    id: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    tenant: int | None = None  # the tenant whose key it is; None: an operator's key (or open, or signed out)
    acting: int | None = None  # an operator's choice of tenant (the switcher); None: the default tenant


class SessionLedger(Protocol):
    """Where ended sessions are recorded: the store (every server sharing the database sees them)."""

    async def end_session(self, session_id: str, *, until: datetime, now: datetime) -> None: ...

    async def session_ended(self, session_id: str) -> bool: ...


class LocalLedger:
    """Ended sessions kept in this process only: for a `Sessions` without a database (tests). Like the
    store's, a record is dropped once its cookie has expired anyway, so sign-outs do not pile up."""

    def __init__(self) -> None:
        self._ended: dict[str, datetime] = {}  # session id -> when its cookie expires

    def __len__(self) -> int:
        return len(self._ended)

    async def end_session(self, session_id: str, *, until: datetime, now: datetime) -> None:
        for expired in [sid for sid, ends in self._ended.items() if ends < now]:
            del self._ended[expired]
        self._ended.setdefault(session_id, until)

    async def session_ended(self, session_id: str) -> bool:
        return session_id in self._ended


class _ClockedSigner(TimestampSigner):
    """itsdangerous's timestamp signer, reading the time from `clock` (a test moves it past the lifetime)."""

    def __init__(self, *args: Any, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


class Sessions:
    def __init__(
        self,
        checker: CredentialChecker,
        *,
        secret: bytes | Callable[[], Awaitable[bytes]] | None = None,
        ledger: SessionLedger | None = None,
        clock: Callable[[], float] = time.time,
        keyring: KeyringSource | None = None,
        default_tenant: int = 0,
    ) -> None:
        """`secret`: the signing key, or how to get it (awaited once, by `ready`); None: a random one.
        `ledger`: where sign-outs are recorded; None: this process only. `keyring`: every key that may
        sign in and whose it is (web/tenancy.py); None: the checker's keys, all `default_tenant`'s."""
        self.checker = checker
        self._keyring = keyring
        self.default_tenant = default_tenant
        self.ledger = ledger or LocalLedger()
        self._load = secret if callable(secret) else None
        self._key = None if callable(secret) else (secret or secrets.token_bytes(32))
        self._clock = clock
        self._cookie_serializer: URLSafeTimedSerializer | None = None

    async def ready(self) -> None:
        """Load the signing key, the first time only."""
        if self._key is None and self._load is not None:
            self._key = await self._load()

    @property
    def _secret(self) -> bytes:
        if self._key is None:
            raise RuntimeError("Sessions.ready() must be awaited before a cookie is read or made")
        return self._key

    @property
    def _serializer(self) -> URLSafeTimedSerializer:
        if self._cookie_serializer is None:
            self._cookie_serializer = URLSafeTimedSerializer(
                self._secret,
                salt=SALT,
                signer=_ClockedSigner,
                signer_kwargs={"clock": self._clock, "digest_method": hashlib.sha256},
            )
        return self._cookie_serializer

    # --- the cookie ---------------------------------------------------------------------------

    def new(self, key: str | None = None, tenant: int | None = None) -> Session:
        return Session(csrf=secrets.token_urlsafe(32), key_tag=self._tag(key) if key else None, tenant=tenant)

    def encode(self, session: Session) -> str:
        data: dict[str, object] = {"c": session.csrf, "k": session.key_tag, "i": session.id}
        if session.tenant is not None:
            data["t"] = session.tenant
        if session.acting is not None:
            data["a"] = session.acting
        return self._serializer.dumps(data)

    def decode(self, raw: str | None) -> Session | None:
        """The session a cookie carries, or None when it is missing, tampered with, signed with another
        secret, malformed or expired."""
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=LIFETIME_SECONDS)
        except BadData:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str) or not isinstance(data.get("i"), str):
            return None
        key_tag, tenant, acting = data.get("k"), data.get("t"), data.get("a")
        return Session(
            csrf=data["c"],
            key_tag=key_tag if isinstance(key_tag, str) else None,
            id=data["i"],
            tenant=tenant if isinstance(tenant, int) and not isinstance(tenant, bool) else None,
            acting=acting if isinstance(acting, int) and not isinstance(acting, bool) else None,
        )

    async def read(self, request: Request) -> Session | None:
        """The request's session; None when its cookie is unusable or the session was signed out."""
        await self.ready()
        session = self.decode(request.cookies.get(COOKIE))
        if session is None or await self.ledger.session_ended(session.id):
            return None
        return session

    async def end(self, session: Session) -> None:
        """Sign `session` out on every server sharing the database, for as long as its cookie could live."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        await self.ledger.end_session(session.id, until=now + timedelta(seconds=LIFETIME_SECONDS), now=now)

    def store(self, response: Response, request: Request, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.encode(session),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def _tag(self, key: str) -> str:
        return hmac.new(self._secret, b"api-key:" + key.encode(), hashlib.sha256).hexdigest()

    # --- who is signed in ---------------------------------------------------------------------

    async def keyring(self) -> Keyring:
        if self._keyring is not None:
            return await self._keyring()
        keys = (await self.checker.credentials()).api_keys
        return Keyring((), ((self.default_tenant, keys),), (), self.default_tenant)

    async def keys(self) -> tuple[SecretStr, ...]:
        """Every key that may sign in: the operator's and every tenant's."""
        ring = await self.keyring()
        return ring.operator + tuple(key for _, keys in ring.tenants for key in keys)

    async def is_open(self) -> bool:
        """No sign-in needed: loopback and no key, as for /tools and /mcp."""
        return self.checker.loopback and not (await self.keyring()).any

    async def signed_in(self, session: Session | None) -> bool:
        ring = await self.keyring()
        if not ring.any:
            return self.checker.loopback  # fails closed if the keys are removed from a public server
        if session is None or session.key_tag is None:
            return False
        # The key must still be one of the keys of whoever signed in with it (operator, or that tenant).
        keys = ring.operator if session.tenant is None else ring.of(session.tenant)
        matched = False
        for key in keys:  # every key compared, no early exit
            matched |= hmac.compare_digest(session.key_tag, self._tag(key.get_secret_value()))
        return matched

    async def sign_in(self, given: str) -> Session | None:
        """A fresh session (new CSRF token) for a key that is an operator's or a tenant's key."""
        await self.ready()
        given = given.strip()
        ring = await self.keyring()
        if key_matches(given, ring.operator):
            return self.new(given)
        owners = [tenant for tenant, keys in ring.tenants if keys and key_matches(given, keys)]
        return self.new(given, tenant=owners[0]) if owners else None

    async def acting_for(self, session: Session) -> int:
        """The tenant a signed-in session acts for: its key's tenant, or the operator's choice while that
        tenant is still served (else the default tenant)."""
        ring = await self.keyring()
        if session.tenant is not None:
            return session.tenant
        if session.acting is not None and ring.business(session.acting) is not None:
            return session.acting
        return ring.default


def csrf_ok(session: Session | None, offered: str | None) -> bool:
    if session is None or not offered:
        return False
    return hmac.compare_digest(session.csrf.encode(), offered.encode())


def foreign_origin(request: Request) -> bool:
    """A POST a browser sent from another site: its Origin is not this server, or Sec-Fetch-Site says so."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not a browser's cross-site POST (browsers send Origin on those); the CSRF token decides
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def foreign_host(request: Request) -> bool:
    """While open on loopback: a host name that is not loopback means a DNS-rebound page."""
    return not asks_for_loopback(request.headers)
