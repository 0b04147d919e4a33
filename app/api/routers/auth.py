"""`/auth`: register, login, refresh, logout, device sessions."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status

from app.api.deps import (
    AuthServiceDep,
    ClientInfoDep,
    CurrentPrincipal,
    LoginCredentials,
    StreamTicketsDep,
)
from app.api.openapi import errors, schema_ref
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
# the auth service applies the rate limits: 429 rate_limited, 503 rate_limit_unavailable
RATE_LIMITED = errors(429, 503)
_LOGIN_ERRORS = RATE_LIMITED | errors(
    (400, "`bad_request`: a form that cannot be parsed"),
    (401, "`invalid_credentials`: the same answer whether the account exists or not"),
    (
        403,
        "`account_pending`: the password is right but the account is not active (waiting "
        "for an administrator's approval, or deactivated)",
    ),
    (422, "`validation_error`: neither a username (or email) and password form nor JSON"),
)
_TOKEN_ERRORS = RATE_LIMITED | errors(
    (
        401,
        "`invalid_token`, `token_expired`, `token_revoked`; `token_reused`: a spent refresh "
        "token was presented again, and its whole session is now revoked",
    )
)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=RATE_LIMITED
    | errors(
        (403, "`registration_closed`: REGISTRATION_MODE is `closed`"),
        (409, "`email_taken` or `username_taken`"),
    ),
)
async def register(request: Request, body: RegisterRequest, auth: AuthServiceDep) -> Any:
    """Create an account (with REGISTRATION_MODE=approval, inactive until an admin activates it)."""
    return await auth.register(data=body, ip=client_ip(request))


@router.post(
    "/login",
    response_model=TokenPair,
    openapi_extra={"requestBody": _LOGIN_BODY},
    responses=_LOGIN_ERRORS,
)
async def login(
    request: Request,
    credentials: LoginCredentials,
    auth: AuthServiceDep,
    client: ClientInfoDep,
) -> Any:
    """Log in with username or email and password (OAuth2 form or JSON)."""
    return await auth.login(
        identifier=credentials.identifier,
        password=credentials.password,
        client=client,
        ip=client_ip(request),
    )


@router.post("/refresh", response_model=TokenPair, responses=_TOKEN_ERRORS)
async def refresh(request: Request, body: RefreshRequest, auth: AuthServiceDep) -> Any:
    """Exchange a refresh token for a new pair (the old refresh token is spent)."""
    return await auth.refresh(refresh_token=body.refresh_token, ip=client_ip(request))


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
