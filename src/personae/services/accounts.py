"""Accounts: registration, passwords, sessions with sliding expiry, API tokens, roles."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from personae.errors import (
    AccountSuspended,
    AdultConfirmationRequired,
    AgeAlreadyDeclared,
    Conflict,
    Forbidden,
    InvalidCredentials,
    NotAuthenticated,
    NotFound,
    PasswordRequired,
    PasswordUnchanged,
    SessionExpired,
    UsernameTaken,
    ValidationFailed,
    WrongPassword,
)
from personae.services import content_ratings
from personae.services.passwords import check_strength
from personae.services.ratelimit import Backoff, RateLimiter
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import accounts as repo
from personae.storage.repos.accounts import SessionRecord, TokenRecord, UserRecord
from personae.storage.types import utcnow

Role = Literal["user", "plus", "moderator", "admin"]
ROLES: tuple[Role, ...] = ("user", "plus", "moderator", "admin")
# The roles that may moderate: take characters down, work the moderation queue.
STAFF_ROLES = frozenset({"moderator", "admin"})
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")
_TOKEN_PREFIX = "pk_"
_DISPLAY_NAME_MAX = 64
# What a deleted account's username becomes (services/account_deletion.py): nobody
# may register a name that looks like one.
DELETED_USERNAME_PREFIX = "deleted-"
# Login failures count for a day after the first: past that, the free ones are free again.
_LOGIN_FAILURES_KEPT_S = 24 * 3600
# The owner of the demo characters, and names that would look official.
_RESERVED_USERNAMES = frozenset({"personae", "system", "staff", "moderator"})


class OwnAdminRole(Conflict):
    """An admin tried to take away their own admin role (which could leave no admin)."""

    code = "cannot_remove_own_admin"
    title = "You cannot remove your own admin role"


def _checked_display_name(display_name: str) -> str:
    """The name shown for a user: 1 to 64 characters once trimmed, no control characters."""
    name = display_name.strip()
    problem = None
    if not name:
        problem = "A display name cannot be empty."
    elif len(name) > _DISPLAY_NAME_MAX:
        problem = f"A display name has at most {_DISPLAY_NAME_MAX} characters."
    elif any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in name):
        problem = "A display name cannot hold control characters (line breaks, tabs...)."
    if problem:
        raise ValidationFailed(
            problem, extra={"errors": [{"field": "display_name", "message": problem}]}
        )
    return name


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role '{role}'; choose one of {', '.join(ROLES)}.")


def check_not_suspended(user: UserRecord) -> None:
    """Refuse a suspended account (403 account_suspended with `until`) until its time ends."""
    until = user.suspended_until
    if until is not None and user.suspended_at(utcnow()):
        raise AccountSuspended(
            f"A moderator suspended this account until {until.isoformat()}.",
            extra={"until": until.isoformat()},
        )


def _already_declared() -> AgeAlreadyDeclared:
    return AgeAlreadyDeclared(
        "Your age was already declared and cannot be changed here; if it is wrong, "
        "ask an admin to clear it, then declare it again."
    )


@dataclass(frozen=True)
class Principal:
    """Who is calling, and how they proved it."""

    user: UserRecord
    via: Literal["session", "token"]
    session: SessionRecord | None = None
    session_renewed: bool = False


@dataclass(frozen=True)
class NewSession:
    user: UserRecord
    session: SessionRecord
    token: str


@dataclass(frozen=True)
class NewToken:
    record: TokenRecord
    token: str


class AccountService:
    """Everything about who a user is. Knows no HTTP and no SQL."""

    def __init__(
        self, database: Database, settings: Settings, limiter: RateLimiter, secret_key: str
    ) -> None:
        self._db = database
        self._settings = settings
        self._limiter = limiter
        self._key = secret_key.encode()
        self._hasher = PasswordHasher()
        # Verified against when the username is unknown, so timing does not tell.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    # --- helpers -----------------------------------------------------------------

    def _digest(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    def normalise_username(self, username: str) -> str:
        name = username.strip().lower()
        if not _USERNAME.match(name):
            raise ValidationFailed(
                "A username has 3 to 32 characters: letters, digits, '_', '.' or '-', "
                "starting with a letter or digit.",
                extra={"errors": [{"field": "username", "message": "invalid username"}]},
            )
        if name in _RESERVED_USERNAMES or name.startswith(DELETED_USERNAME_PREFIX):
            raise UsernameTaken(f"The username '{name}' is reserved.")
        return name

    def check_password_strength(self, password: str, username: str) -> None:
        """Refuse short, common or username-like passwords, naming the reason."""
        check_strength(password, username, minimum=self._settings.password_min_length)

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # --- registration and users ---------------------------------------------------

    async def register(
        self,
        username: str,
        password: str,
        *,
        display_name: str | None = None,
        role: Role = "user",
        ip: str | None = None,
    ) -> UserRecord:
        """Create an account after checking the name and the password's strength."""
        if ip is not None:
            await self._limiter.hit("register-ip", ip, self._settings.register_rate_per_ip)
        name = self.normalise_username(username)
        _check_role(role)
        self.check_password_strength(password, name)
        password_hash = await self._hash(password)
        try:
            async with self._db.write() as tx:
                return await repo.insert_user(
                    tx,
                    username=name,
                    display_name=(display_name or username).strip()[:64] or name,
                    password_hash=password_hash,
                    role=role,
                )
        except repo.DuplicateUsername as error:
            raise UsernameTaken(f"The username '{name}' is taken.") from error

    async def get_user_by_username(self, username: str) -> UserRecord:
        async with self._db.read() as tx:
            user = await repo.get_user_by_username(tx, username.strip().lower())
        if user is None:
            raise NotFound(f"No user named '{username}'.")
        return user

    async def set_role(self, username: str, role: Role) -> UserRecord:
        """Give an account one of ROLES; an unknown role is refused, not stored."""
        _check_role(role)
        user = await self.get_user_by_username(username)
        return await self._store_role(user.id, role)

    async def _store_role(self, user_id: str, role: str) -> UserRecord:
        _check_role(role)
        async with self._db.write() as tx:
            if await repo.get_user(tx, user_id) is None:
                raise NotFound("No user with this id.")
            await repo.set_user_role(tx, user_id, role)
            updated = await repo.get_user(tx, user_id)
        assert updated is not None
        return updated

    async def list_users(
        self, admin: UserRecord, *, query: str | None, before: str | None, limit: int
    ) -> tuple[list[UserRecord], bool]:
        """A page of accounts, newest first, and whether more follow (admins only)."""
        self._require_admin(admin)
        async with self._db.read() as tx:
            found = await repo.search_users(
                tx, query=(query or "").strip() or None, before=before, limit=limit + 1
            )
        return found[:limit], len(found) > limit

    async def change_role(self, admin: UserRecord, user_id: str, role: str) -> UserRecord:
        """What `personae user set-role` does, for an admin in the web app.

        An admin may not take away their own admin role: the last admin would lock
        everybody out of this page, and only the command line could undo it.
        """
        self._require_admin(admin)
        if user_id == admin.id and role != "admin":
            raise OwnAdminRole(
                "You cannot remove your own admin role; ask another admin, or use "
                "`personae user set-role` on the server."
            )
        return await self._store_role(user_id, role)

    # --- age and mature content ---------------------------------------------------

    async def declare_age(self, user: UserRecord, birth_date: date) -> UserRecord:
        """Record the user's self-declared age once (content_ratings says what is kept).

        A later declaration is refused, so a minor cannot become adult by declaring
        again; an admin can clear a wrong declaration (`reset_age`).
        """
        today = content_ratings.today()
        problem = None
        if birth_date > today:
            problem = "A birth date cannot be in the future."
        elif birth_date < content_ratings.birthday_in(
            today, today.year - content_ratings.OLDEST_AGE
        ):
            problem = (
                f"A birth date more than {content_ratings.OLDEST_AGE} years back is not valid."
            )
        if problem:
            raise ValidationFailed(
                problem, extra={"errors": [{"field": "birth_date", "message": problem}]}
            )
        if user.age_declared_at is not None:
            raise _already_declared()
        adult_from = max(content_ratings.adult_from(birth_date), today)
        async with self._db.write() as tx:
            if not await repo.declare_age(tx, user.id, declared_at=utcnow(), adult_from=adult_from):
                raise _already_declared()
            updated = await repo.get_user(tx, user.id)
        assert updated is not None
        return updated

    async def update_profile(
        self, user: UserRecord, *, display_name: str | None, show_mature: bool | None
    ) -> UserRecord:
        """Change the display name and/or turn mature characters in discovery on
        (confirmed adults only) or off; None leaves a setting as it is."""
        values: dict[str, object] = {}
        if display_name is not None:
            values["display_name"] = _checked_display_name(display_name)
        if show_mature is not None:
            if show_mature and not content_ratings.is_adult(user):
                raise AdultConfirmationRequired(
                    "Only an account confirmed as 18 or older can show mature characters; "
                    "confirm your age first."
                )
            values["show_mature"] = show_mature
        async with self._db.write() as tx:
            if values:
                await repo.update_profile(tx, user.id, **values)
            updated = await repo.get_user(tx, user.id)
        assert updated is not None
        return updated

    async def reset_age(self, admin: UserRecord, user_id: str) -> UserRecord:
        """Clear an account's age declaration so it can declare again (admins only)."""
        self._require_admin(admin)
        async with self._db.write() as tx:
            if await repo.get_user(tx, user_id) is None:
                raise NotFound("No user with this id.")
            await repo.reset_age(tx, user_id)
            updated = await repo.get_user(tx, user_id)
        assert updated is not None
        return updated

    @staticmethod
    def _require_admin(user: UserRecord) -> None:
        if user.role != "admin":
            raise Forbidden("Only admins manage users and their roles.")

    # --- sessions ---------------------------------------------------------------

    async def login(
        self, username: str, password: str, *, ip: str | None, user_agent: str | None
    ) -> NewSession:
        """Check the password and open a session.

        No lockout a stranger could trigger: every attempt counts against the
        address (one address spraying usernames is stopped), failures slow down
        their own (username, address) pair with doubling delays, and only past a
        high bound of failures from everywhere are addresses that never signed in
        to the account slowed down too. The owner at their own address gets in.
        """
        name = username.strip().lower()
        pair = f"{name}@{ip or '-'}"
        if ip is not None:
            await self._limiter.hit("login-ip", ip, self._settings.login_rate_per_ip)
        await self._limiter.wait_for_delay("login-pair", pair)
        if not await self._limiter.marked("login-known", pair):
            await self._limiter.wait_for_delay("login-account", name)
        async with self._db.read() as tx:
            user = await repo.get_user_by_username(tx, name)
        if user is None or user.password_hash is None:
            await self._verify(self._dummy_hash, password)
            await self._login_failed(name, pair)
        elif not await self._verify(user.password_hash, password):
            await self._login_failed(name, pair)
        # Only who knows the password learns that the account is suspended.
        check_not_suspended(user)
        await self._limiter.forget("login-pair", pair)
        await self._limiter.mark("login-known", pair, self._settings.session_ttl_s)
        if self._hasher.check_needs_rehash(user.password_hash):
            new_hash = await self._hash(password)
            async with self._db.write() as tx:
                await repo.set_password_hash(tx, user.id, new_hash)
        return await self.open_session(user, ip=ip, user_agent=user_agent)

    async def _login_failed(self, name: str, pair: str) -> NoReturn:
        """Count a failed login against its pair and its account, then refuse it."""
        settings = self._settings
        for scope, identity, free in (
            ("login-pair", pair, settings.login_free_failures),
            ("login-account", name, settings.login_account_free_failures),
        ):
            await self._limiter.fail(scope, identity, self._backoff(free))
        raise InvalidCredentials()

    def _backoff(self, free_failures: int) -> Backoff:
        return Backoff(
            free_failures=free_failures,
            first_delay_s=self._settings.login_delay_s,
            max_delay_s=self._settings.login_delay_max_s,
            remember_s=_LOGIN_FAILURES_KEPT_S,
        )

    async def open_session(
        self, user: UserRecord, *, ip: str | None, user_agent: str | None
    ) -> NewSession:
        token = secrets.token_urlsafe(32)
        async with self._db.write() as tx:
            session = await repo.insert_session(
                tx,
                user_id=user.id,
                token_hash=self._digest(token),
                csrf_token=secrets.token_urlsafe(24),
                expires_at=utcnow() + timedelta(seconds=self._settings.session_ttl_s),
                user_agent=(user_agent or "")[:256] or None,
                ip=ip,
            )
        return NewSession(user=user, session=session, token=token)

    async def authenticate_session(self, token: str) -> Principal:
        """The user behind a session cookie, renewing the session while it is used."""
        now = utcnow()
        async with self._db.read_one() as tx:
            found = await repo.get_session_and_user(tx, self._digest(token))
        if found is None:
            raise NotAuthenticated("This session is unknown or was closed; log in again.")
        session, user = found
        if session.expires_at <= now:
            raise SessionExpired("Your session has expired; log in again. Nothing was lost.")
        check_not_suspended(user)
        renew_after = timedelta(seconds=self._settings.session_renew_after_s)
        if now - session.last_seen_at < renew_after:
            return Principal(user=user, via="session", session=session)
        expires_at = now + timedelta(seconds=self._settings.session_ttl_s)
        async with self._db.write() as tx:
            await repo.touch_session(tx, session.id, last_seen_at=now, expires_at=expires_at)
        renewed = SessionRecord(
            **{**session.__dict__, "last_seen_at": now, "expires_at": expires_at}
        )
        return Principal(user=user, via="session", session=renewed, session_renewed=True)

    async def logout(self, principal: Principal) -> None:
        if principal.session is not None:
            async with self._db.write() as tx:
                await repo.delete_session(tx, principal.session.id, principal.user.id)

    async def list_sessions(self, user: UserRecord) -> list[SessionRecord]:
        async with self._db.read() as tx:
            return await repo.list_sessions(tx, user.id, utcnow())

    async def revoke_session(self, user: UserRecord, session_id: str) -> None:
        async with self._db.write() as tx:
            if not await repo.delete_session(tx, session_id, user.id):
                raise NotFound("No such session.")

    async def log_out_other_sessions(self, principal: Principal) -> int:
        """End every session of the caller but the one making the request (all of
        them when the caller uses an API token); returns how many ended."""
        keep = principal.session.id if principal.session else None
        async with self._db.write() as tx:
            return await repo.delete_sessions_except(tx, principal.user.id, keep)

    # --- the current password: changing it, confirming with it -------------------

    async def confirm_password(
        self, user: UserRecord, password: str | None, *, ip: str | None
    ) -> None:
        """Check the account's current password before a change that needs it.

        Limited like login: attempts count against the address, and failures make
        the account's next confirmations wait (doubling), so someone holding a
        stolen session cannot guess the password to take the account over.
        """
        if user.password_hash is None:
            return
        if not password:
            raise PasswordRequired("Type your current password to confirm.")
        if ip is not None:
            await self._limiter.hit("password-ip", ip, self._settings.login_rate_per_ip)
        await self._limiter.wait_for_delay("password-user", user.id)
        if not await self._verify(user.password_hash, password):
            await self._limiter.fail(
                "password-user", user.id, self._backoff(self._settings.login_free_failures)
            )
            raise WrongPassword("The current password is not right; nothing was changed.")
        await self._limiter.forget("password-user", user.id)

    async def change_password(
        self, principal: Principal, current: str | None, new: str, *, ip: str | None
    ) -> int:
        """Set a new password after checking the current one (an account without a
        password sets its first); every other session ends, the caller's stays.
        Returns how many sessions ended."""
        user = principal.user
        await self.confirm_password(user, current, ip=ip)
        self.check_password_strength(new, user.username)
        if user.password_hash is not None and current == new:
            raise PasswordUnchanged("Choose a password different from the current one.")
        new_hash = await self._hash(new)
        keep = principal.session.id if principal.session else None
        async with self._db.write() as tx:
            await repo.set_password_hash(tx, user.id, new_hash)
            return await repo.delete_sessions_except(tx, user.id, keep)

    async def purge_expired_sessions(self) -> int:
        async with self._db.write() as tx:
            return await repo.delete_expired_sessions(tx, utcnow())

    # --- API tokens ---------------------------------------------------------------

    async def create_token(self, user: UserRecord, name: str) -> NewToken:
        """A new bearer token; its plain text is shown once and only its hash is kept."""
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._db.write() as tx:
            record = await repo.insert_token(
                tx,
                user_id=user.id,
                name=name.strip() or "token",
                token_hash=self._digest(token),
                prefix=token[:10],
            )
        return NewToken(record=record, token=token)

    async def authenticate_token(self, token: str) -> Principal:
        async with self._db.read() as tx:
            record = await repo.get_active_token_by_hash(tx, self._digest(token))
            user = await repo.get_user(tx, record.user_id) if record else None
        if record is None or user is None:
            raise NotAuthenticated("This API token is unknown or was revoked.")
        check_not_suspended(user)
        now = utcnow()
        if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
            async with self._db.write() as tx:
                await repo.mark_token_used(tx, record.id, now)
        return Principal(user=user, via="token")

    async def list_tokens(self, user: UserRecord) -> list[TokenRecord]:
        async with self._db.read() as tx:
            return await repo.list_tokens(tx, user.id)

    async def revoke_token(self, user: UserRecord, token_id: str) -> None:
        async with self._db.write() as tx:
            if not await repo.revoke_token(tx, token_id, user.id):
                raise NotFound("No such token.")
