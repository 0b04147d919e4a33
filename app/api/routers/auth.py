"""`/auth`: register, login, refresh, logout, device sessions."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response, status
from pydantic import ValidationError

from app.api.deps import (
    AuthServiceDep,
    ClientInfoDep,
    CurrentPrincipal,
    LimiterDep,
    SettingsDep,
    StreamTicketsDep,
)
from app.api.openapi import errors, schema_ref
from app.core.errors import InvalidInput
from app.core.json_input import loads_bounded
from app.core.ratelimit import client_ip
from app.schemas.auth import (
    IDENTIFIER_SCHEMA,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    SessionRead,
    StreamTicketRead,
    TokenPair,
)
from app.schemas.common import MAX_JSON_DEPTH
from app.schemas.user import UserRead

router = APIRouter(prefix="/auth", tags=["auth"])

_FORM_FIELD = {"type": "string", "minLength": 1, "maxLength": 320}
_LOGIN_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["password"],
                "properties": {
                    "grant_type": {"type": "string", "description": "`password` (ignored)"},
                    "username": {**_FORM_FIELD, "description": "username or email"},
                    "email": _FORM_FIELD,
                    "password": {**_FORM_FIELD, "maxLength": 1024, "format": "password"},
                },
                **IDENTIFIER_SCHEMA,
            }
        },
        "application/json": {"schema": schema_ref(LoginRequest)},
    },
}
_LOGIN_ERRORS = errors(
    (400, "`bad_request`: a form that cannot be parsed"),
    (401, "`invalid_credentials`: the same answer whether the account exists or not"),
    (422, "`validation_error`: neither a username (or email) and password form nor JSON"),
)
_TOKEN_ERRORS = errors(
    (
        401,
        "`invalid_token`, `token_expired`, `token_revoked`; `token_reused`: a spent refresh "
        "token was presented again, and its whole session is now revoked",
    )
)


async def read_login(request: Request) -> LoginRequest:
    """Parse an OAuth2 password form or a JSON body into one login request."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            data: Any = {
                key: form.get(key)
                for key in ("username", "email", "password")
                if isinstance(form.get(key), str)
            }
        else:
            data = loads_bounded(await request.body() or b"null", max_depth=MAX_JSON_DEPTH)
        return LoginRequest.model_validate(data)
    except (ValidationError, ValueError) as exc:
        raise InvalidInput(
            "Send username (or email) and password as an OAuth2 form or a JSON object"
        ) from exc


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=errors((409, "`email_taken` or `username_taken`")),
)
async def register(
    request: Request,
    body: RegisterRequest,
    auth: AuthServiceDep,
    limiter: LimiterDep,
    settings: SettingsDep,
) -> Any:
    """Create an account."""
    await limiter.hit(
        settings.rate_limit_register, "register", client_ip(request), fail_closed=True
    )
    return await auth.register(data=body)


@router.post(
    "/login",
    response_model=TokenPair,
    openapi_extra={"requestBody": _LOGIN_BODY},
    responses=_LOGIN_ERRORS,
)
async def login(
    request: Request,
    credentials: Annotated[LoginRequest, Depends(read_login)],
    auth: AuthServiceDep,
    limiter: LimiterDep,
    settings: SettingsDep,
    client: ClientInfoDep,
) -> Any:
    """Log in with username or email and password (OAuth2 form or JSON)."""
    ip = client_ip(request)
    await limiter.hit(settings.rate_limit_login_ip, "login-ip", ip, fail_closed=True)
    account_limit = partial(
        limiter.hit, settings.rate_limit_login_account, "login-account", ip, fail_closed=True
    )
    return await auth.login(
        identifier=credentials.identifier,
        password=credentials.password,
        client=client,
        account_limit=account_limit,
    )


@router.post("/refresh", response_model=TokenPair, responses=_TOKEN_ERRORS)
async def refresh(
    request: Request,
    body: RefreshRequest,
    auth: AuthServiceDep,
    limiter: LimiterDep,
    settings: SettingsDep,
) -> Any:
    """Exchange a refresh token for a new pair (the old refresh token is spent)."""
    await limiter.hit(settings.rate_limit_refresh, "refresh", client_ip(request), fail_closed=True)
    return await auth.refresh(refresh_token=body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    principal: CurrentPrincipal,
    auth: AuthServiceDep,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """Revoke this session, or every session with `all_devices`."""
    await auth.logout(principal=principal, all_devices=bool(body and body.all_devices))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/stream-ticket", response_model=StreamTicketRead)
async def create_stream_ticket(principal: CurrentPrincipal, tickets: StreamTicketsDep) -> Any:
    """A single-use ticket (60 s) to open an SSE stream without an Authorization header."""
    return tickets.issue(principal=principal)


@router.get("/sessions", response_model=list[SessionRead])
async def list_sessions(principal: CurrentPrincipal, auth: AuthServiceDep) -> Any:
    """List the active sessions (devices) of the current user."""
    return await auth.list_sessions(principal=principal)


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(
    session_id: uuid.UUID, principal: CurrentPrincipal, auth: AuthServiceDep
) -> Response:
    """Revoke one device session."""
    await auth.revoke_session(principal=principal, session_id=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
