"""Registration, login, logout, the current user, sessions and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from personae.api.deps import (
    ContainerDep,
    CurrentPrincipal,
    CurrentUser,
    clear_session_cookies,
    client_ip,
    set_session_cookies,
)
from personae.api.schemas.accounts import (
    AccountDeleted,
    AccountDeletionRequest,
    AgeDeclaration,
    LoginRequest,
    MePublic,
    MeUpdate,
    PasswordChange,
    RegisterRequest,
    SessionOpened,
    SessionPublic,
    SessionsEnded,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserPublic,
    WellbeingPublic,
)
from personae.services.accounts import NewSession
from personae.services.devices import device_name

router = APIRouter(prefix="/api/v1", tags=["accounts"])


def _opened(
    request: Request, response: Response, container: ContainerDep, opened: NewSession
) -> SessionOpened:
    set_session_cookies(request, response, container, opened.token, opened.session.csrf_token)
    return SessionOpened(
        user=UserPublic.model_validate(opened.user),
        csrf_token=opened.session.csrf_token,
        expires_at=opened.session.expires_at,
    )


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(
    body: RegisterRequest, request: Request, response: Response, container: ContainerDep
) -> SessionOpened:
    user = await container.accounts.register(
        body.username, body.password, display_name=body.display_name, ip=client_ip(request)
    )
    opened = await container.accounts.open_session(
        user, ip=client_ip(request), user_agent=request.headers.get("user-agent")
    )
    return _opened(request, response, container, opened)


@router.post("/auth/login")
async def login(
    body: LoginRequest, request: Request, response: Response, container: ContainerDep
) -> SessionOpened:
    opened = await container.accounts.login(
        body.username,
        body.password,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    return _opened(request, response, container, opened)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: CurrentPrincipal, response: Response, container: ContainerDep) -> None:
    await container.accounts.logout(principal)
    clear_session_cookies(response)


@router.get("/me")
async def me(user: CurrentUser, container: ContainerDep) -> MePublic:
    """The caller, with the warnings moderators gave them."""
    warnings = await container.reports.warnings(user)
    return MePublic.model_validate(
        {**UserPublic.model_validate(user).model_dump(), "warnings": warnings}
    )


@router.patch("/me")
async def update_me(body: MeUpdate, user: CurrentUser, container: ContainerDep) -> UserPublic:
    """Settings of one's account: `display_name`, `show_mature` (confirmed adults only)."""
    return UserPublic.model_validate(
        await container.accounts.update_profile(
            user, display_name=body.display_name, show_mature=body.show_mature
        )
    )


@router.delete("/me")
async def delete_me(
    body: AccountDeletionRequest,
    request: Request,
    response: Response,
    user: CurrentUser,
    container: ContainerDep,
) -> AccountDeleted:
    """Delete the account for good (docs/settings.md says what happens to what it owned),
    confirmed by its password, or by its username typed for an account without one."""
    summary = await container.account_deletion.delete(
        user, password=body.password, confirm=body.confirm, ip=client_ip(request)
    )
    clear_session_cookies(response)
    return AccountDeleted.model_validate(summary)


@router.post("/me/password")
async def change_password(
    body: PasswordChange, request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> SessionsEnded:
    """A new password; every other session is logged out, this one stays."""
    ended = await container.accounts.change_password(
        principal, body.current_password, body.new_password, ip=client_ip(request)
    )
    return SessionsEnded(sessions_ended=ended)


@router.post("/me/age")
async def declare_age(
    body: AgeDeclaration, user: CurrentUser, container: ContainerDep
) -> UserPublic:
    """Declare one's birth date, once; 18 or older makes the account a confirmed adult."""
    return UserPublic.model_validate(await container.accounts.declare_age(user, body.parsed))


@router.get("/me/wellbeing")
async def wellbeing(user: CurrentUser, container: ContainerDep) -> WellbeingPublic:
    """How long the current chatting session lasts, and whether to suggest a break."""
    return WellbeingPublic.model_validate(await container.wellbeing.status(user))


@router.post("/me/wellbeing/dismiss")
async def dismiss_wellbeing(user: CurrentUser, container: ContainerDep) -> WellbeingPublic:
    """Put the time-spent notice away until another full session length has passed."""
    return WellbeingPublic.model_validate(await container.wellbeing.dismiss(user))


@router.get("/me/sessions")
async def list_sessions(
    principal: CurrentPrincipal, container: ContainerDep
) -> list[SessionPublic]:
    current_id = principal.session.id if principal.session else None
    sessions = await container.accounts.list_sessions(principal.user)
    return [
        SessionPublic.model_validate(session).model_copy(
            update={"current": session.id == current_id, "device": device_name(session.user_agent)}
        )
        for session in sessions
    ]


@router.delete("/me/sessions")
async def log_out_other_sessions(
    principal: CurrentPrincipal, container: ContainerDep
) -> SessionsEnded:
    """Log out every other device; this session stays (`POST /auth/logout` ends it)."""
    return SessionsEnded(sessions_ended=await container.accounts.log_out_other_sessions(principal))


@router.delete("/me/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(session_id: str, user: CurrentUser, container: ContainerDep) -> None:
    await container.accounts.revoke_session(user, session_id)


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(
    body: TokenCreate, user: CurrentUser, container: ContainerDep
) -> TokenCreated:
    created = await container.accounts.create_token(user, body.name)
    return TokenCreated.model_validate(
        {**TokenPublic.model_validate(created.record).model_dump(), "token": created.token}
    )


@router.get("/tokens")
async def list_tokens(user: CurrentUser, container: ContainerDep) -> list[TokenPublic]:
    return [
        TokenPublic.model_validate(token) for token in await container.accounts.list_tokens(user)
    ]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(token_id: str, user: CurrentUser, container: ContainerDep) -> None:
    await container.accounts.revoke_token(user, token_id)
