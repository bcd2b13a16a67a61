"""Who may do what on the controller's API: users, roles, tokens, sessions, and the audit log.

Roles, each implying the ones before it::

    viewer    read stations, readings, events, configuration state
    operator  push documents, start rollouts, edit groups
    approver  (operator, plus approving what others prepared)
    admin     everything, including users, tokens and the audit log

Scripts send ``Authorization: Bearer <token>`` (``roadside-fleet token create NAME``); the
console logs in (``POST /auth/login``), keeps the ``roadside_session`` cookie and sends the
session's ``X-CSRF-Token`` header on every unsafe method. Passwords are kept as scrypt hashes,
tokens and session ids as SHA-256 digests (they are 256-bit random values), all in the fleet
store's own database (SQLite or PostgreSQL), so every controller process sharing the database
shares users, sessions and the audit log.

Routes declare what they need with ``Depends(require("operator"))``; the dependency answers 401
(no or bad credentials) or 403 (role missing, CSRF token missing) as ``{"code", "detail"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from fleet.errors import AuthError
from roadside.clock import Clock, SystemClock

ROLES = ("viewer", "operator", "approver", "admin")
SESSION_COOKIE = "roadside_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 8 * 3600
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# scrypt cost: 16 MiB and ~50 ms per check on a station-class core; stored with each hash
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_users (
    name TEXT PRIMARY KEY, password TEXT, roles TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS auth_tokens (
    digest TEXT PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, last_used DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS auth_sessions (
    digest TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
    t DOUBLE PRECISION NOT NULL, principal TEXT NOT NULL, via TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_log_t ON audit_log (t)
"""


def implied(roles: Iterable[str]) -> frozenset[str]:
    """Every role the given ones grant (admin ⊃ approver ⊃ operator ⊃ viewer)."""
    granted = {r for r in roles if r in ROLES}
    top = max((ROLES.index(r) for r in granted), default=-1)
    return frozenset(ROLES[: top + 1])


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, the roles granted to it, and how it authenticated."""

    name: str
    roles: frozenset[str]
    via: str  # "token" | "session"

    def has(self, role: str) -> bool:
        return role in implied(self.roles)


@dataclass(frozen=True)
class Session:
    """A console login: the cookie value (secret), its CSRF token, and when it expires."""

    id: str
    csrf: str
    name: str
    expires: float


@dataclass(frozen=True)
class AuditEntry:
    """One change, who made it and how."""

    time: float
    principal: str
    via: str
    action: str
    target: str
    detail: dict[str, Any]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex), salted per password."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 << 20
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def check_password(password: str, stored: str) -> bool:
    """True when ``password`` matches a :func:`hash_password` value (constant-time compare)."""
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 << 20,
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), key)


class Auth:
    """Users, tokens, sessions and the audit log, in the fleet store's database.

    ``store`` is a :class:`fleet.store_sql.SqlStore` (SQLite or PostgreSQL); the tables are
    created on first use.
    """

    def __init__(self, store: Any, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self._init()

    # -- plumbing --------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _init(self) -> None:
        with self.store._tx() as cur:
            if self.store.placeholder == "%s":  # PostgreSQL: two controllers start at once
                from fleet.store_postgres import SCHEMA_LOCK

                cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for statement in (s for s in SCHEMA.split(";") if s.strip()):
                cur.execute(statement)

    def _exec(self, text: str, params: tuple[Any, ...] = ()) -> int:
        with self.store._tx() as cur:
            cur.execute(self.store._sql(text), params)
            return int(cur.rowcount)

    def _query(self, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return list(self.store._query(text, params))

    # -- users -----------------------------------------------------------------------------------
    def add_user(self, name: str, password: str | None, roles: Iterable[str]) -> None:
        """Create a user (``password`` None: token-only, for scripts); refuses a taken name."""
        wanted = sorted(set(roles))
        if not _NAME.match(name):
            raise AuthError(f"user name {name!r}: letters, digits and _ . @ - only, 1-64 long")
        unknown = [r for r in wanted if r not in ROLES]
        if unknown or not wanted:
            raise AuthError(f"user {name!r}: roles must be among {', '.join(ROLES)}: {unknown}")
        if password is not None and len(password) < 10:
            raise AuthError(f"user {name!r}: a password needs at least 10 characters")
        if self._query("SELECT name FROM auth_users WHERE name = ?", (name,)):
            raise AuthError(f"user {name!r} exists already")
        self._exec(
            "INSERT INTO auth_users (name, password, roles, created) VALUES (?, ?, ?, ?)",
            (
                name,
                None if password is None else hash_password(password),
                json.dumps(wanted),
                self._now(),
            ),
        )

    def users(self) -> list[dict[str, Any]]:
        """Every user: name, roles, whether it can log in, disabled."""
        rows = self._query("SELECT name, password, roles, disabled FROM auth_users ORDER BY name")
        return [
            {
                "name": r[0],
                "roles": json.loads(r[2]),
                "password": r[1] is not None,
                "disabled": bool(r[3]),
            }
            for r in rows
        ]

    def _roles(self, name: str) -> frozenset[str] | None:
        rows = self._query("SELECT roles, disabled FROM auth_users WHERE name = ?", (name,))
        if not rows or rows[0][1]:
            return None
        return frozenset(json.loads(rows[0][0]))

    def disable_user(self, name: str) -> None:
        """Disable a user: its tokens and sessions stop working at once."""
        if not self._exec("UPDATE auth_users SET disabled = 1 WHERE name = ?", (name,)):
            raise AuthError(f"user {name!r} is not known")
        self._exec("DELETE FROM auth_sessions WHERE name = ?", (name,))

    # -- tokens ----------------------------------------------------------------------------------
    def issue_token(self, name: str, label: str = "") -> str:
        """A new bearer token for ``name`` (shown once; only its digest is kept)."""
        if self._roles(name) is None:
            raise AuthError(f"user {name!r} is not known or disabled")
        token = "rst_" + secrets.token_urlsafe(32)
        self._exec(
            "INSERT INTO auth_tokens (digest, name, label, created) VALUES (?, ?, ?, ?)",
            (_digest(token), name, label, self._now()),
        )
        return token

    def revoke_tokens(self, name: str, label: str | None = None) -> int:
        """Revoke a user's tokens (all, or those with ``label``); returns how many."""
        if label is None:
            return self._exec("DELETE FROM auth_tokens WHERE name = ?", (name,))
        return self._exec("DELETE FROM auth_tokens WHERE name = ? AND label = ?", (name, label))

    def by_token(self, token: str) -> Principal | None:
        rows = self._query("SELECT name FROM auth_tokens WHERE digest = ?", (_digest(token),))
        if not rows:
            return None
        roles = self._roles(rows[0][0])
        return None if roles is None else Principal(rows[0][0], roles, "token")

    # -- sessions --------------------------------------------------------------------------------
    def login(self, name: str, password: str) -> Session:
        """Check a password and open a console session; raises :class:`AuthError` when wrong."""
        rows = self._query("SELECT password, disabled FROM auth_users WHERE name = ?", (name,))
        stored = rows[0][0] if rows else None
        # compare against a real hash even for unknown users: the answer takes as long
        ok = check_password(password, stored or _DUMMY_HASH) and stored is not None
        if not ok or rows[0][1]:
            raise AuthError("wrong user name or password")
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(24), name, self._now() + SESSION_TTL_S
        )
        self._exec("DELETE FROM auth_sessions WHERE expires < ?", (self._now(),))
        self._exec(
            "INSERT INTO auth_sessions (digest, name, csrf, created, expires) "
            "VALUES (?, ?, ?, ?, ?)",
            (_digest(session.id), name, session.csrf, self._now(), session.expires),
        )
        return session

    def logout(self, session_id: str) -> None:
        self._exec("DELETE FROM auth_sessions WHERE digest = ?", (_digest(session_id),))

    def by_session(self, session_id: str) -> tuple[Principal, str] | None:
        """The principal of a live session and its CSRF token."""
        rows = self._query(
            "SELECT name, csrf, expires FROM auth_sessions WHERE digest = ?",
            (_digest(session_id),),
        )
        if not rows or float(rows[0][2]) < self._now():
            return None
        roles = self._roles(rows[0][0])
        return None if roles is None else (Principal(rows[0][0], roles, "session"), rows[0][1])

    # -- audit -----------------------------------------------------------------------------------
    def audit(
        self, principal: Principal, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Record one change."""
        self._exec(
            "INSERT INTO audit_log (t, principal, via, action, target, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                self._now(),
                principal.name,
                principal.via,
                action,
                target,
                json.dumps(detail or {}, sort_keys=True, default=str),
            ),
        )

    def audit_log(self, limit: int = 1000) -> list[AuditEntry]:
        """The newest ``limit`` changes, oldest first."""
        rows = self._query(
            "SELECT t, principal, via, action, target, detail FROM audit_log "
            "ORDER BY t DESC LIMIT ?",
            (int(limit),),
        )
        return [
            AuditEntry(float(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]))
            for r in reversed(rows)
        ]

    # -- requests --------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Principal:
        """The caller of a request, or 401; a session on an unsafe method also needs its CSRF
        header (403 without it)."""
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise api_error(401, "bad_credentials", "Authorization: expected Bearer <token>")
            principal = self.by_token(token.strip())
            if principal is None:
                raise api_error(401, "bad_credentials", "the bearer token is not valid")
            return principal
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            found = self.by_session(cookie)
            if found is None:
                raise api_error(401, "session_expired", "the session has expired; log in again")
            principal, csrf = found
            if request.method in UNSAFE_METHODS and not hmac.compare_digest(
                request.headers.get(CSRF_HEADER, ""), csrf
            ):
                raise api_error(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header")
            return principal
        raise api_error(401, "unauthenticated", "log in or send Authorization: Bearer <token>")


_DUMMY_HASH = hash_password("not a real password, for timing only")

PRINCIPAL_KEY = "roadside.principal"
AUDITED_KEY = "roadside.audited"


def api_error(status: int, code: str, detail: str) -> HTTPException:
    """An HTTPException the app answers as ``{"code": code, "detail": detail}``."""
    return HTTPException(status, detail={"code": code, "detail": detail})


def require(role: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the authenticated :class:`Principal` holding ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def dependency(request: Request) -> Principal:
        auth: Auth | None = getattr(request.app.state, "auth", None)
        if auth is None:
            raise api_error(503, "no_auth", "this API has no user database")
        principal = auth.authenticate(request)
        if not principal.has(role):
            raise api_error(403, "forbidden", f"{principal.name} lacks the {role} role")
        request.scope[PRINCIPAL_KEY] = principal
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


def audit(request: Request, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Record a change made by the request's principal (routes call this with the details;
    the app records a generic entry for any other successful unsafe request)."""
    principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
    auth: Auth | None = getattr(request.app.state, "auth", None)
    if principal is None or auth is None:
        return
    auth.audit(principal, action, target, detail)
    request.scope[AUDITED_KEY] = True
