"""Annotated dependencies: routes read like sentences."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.openapi import answers
from app.core.api_keys import is_api_key
from app.core.config import Settings
from app.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from app.core.json_input import loads_bounded
from app.core.shutdown import StreamShutdown
from app.models import User
from app.schemas.auth import LoginRequest
from app.schemas.common import MAX_JSON_DEPTH
from app.services.admin import Auditor
from app.services.api_keys import ApiKeyService
from app.services.auth import AuthLimits, AuthService, ClientInfo, Principal, TokenAuthenticator
from app.services.chat.history import HistoryService
from app.services.chat.service import ChatService
from app.services.chat.tree_edits import TreeEditService
from app.services.files import FileService
from app.services.llm.registry import ModelRegistry
from app.services.stream_tickets import StreamTickets
from app.services.sync import SyncService
from app.services.tools import Toolbox
from app.services.usage.quota import QuotaGuard
from app.services.users import UserService
from app.state import AppState

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/login", auto_error=False)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


async def get_state(request: Request) -> AppState:
    """The lifespan-owned resources."""
    state: AppState = request.app.state.vektor
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings_dep(state: StateDep) -> Settings:
    """The running app's settings."""
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


@answers(503)  # database_unavailable
async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One session per request, closed as soon as the route returns (even for streams)."""
    async with state.session_factory() as session:
        yield session


# scope="function": the session is released when the endpoint returns, never held open
# for the life of a streaming response.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_client_info(request: Request) -> ClientInfo:
    """User agent (without control characters: it is stored) and socket address."""
    user_agent = request.headers.get("user-agent")
    return ClientInfo(
        user_agent=_CONTROL.sub("", user_agent) if user_agent else None,
        ip=request.client.host if request.client else None,
    )


ClientInfoDep = Annotated[ClientInfo, Depends(get_client_info)]


async def get_auditor(state: StateDep, client: ClientInfoDep) -> Auditor:
    """The audit log with this request's client address and user agent attached."""
    return Auditor(log=state.audit, ip=client.ip, user_agent=client.user_agent)


AuditorDep = Annotated[Auditor, Depends(get_auditor)]


async def get_auth_service(
    state: StateDep, settings: SettingsDep, session: SessionDep, audit: AuditorDep
) -> AuthService:
    """Auth use cases bound to this request's session (they apply the auth rate limits)."""
    return AuthService(
        session=session,
        hasher=state.hasher,
        tokens=state.tokens,
        limiter=state.limiter,
        limits=AuthLimits.from_settings(settings),
        registration=settings.registration_mode,
        audit=audit,
    )


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


async def get_user_service(state: StateDep, session: SessionDep, audit: AuditorDep) -> UserService:
    """User use cases bound to this request's session."""
    return UserService(
        session=session, hasher=state.hasher, storage=state.file_storage, audit=audit
    )


UserServiceDep = Annotated[UserService, Depends(get_user_service)]


async def get_file_service(state: StateDep, session: SessionDep) -> FileService:
    """File use cases bound to this request's session and the app's file storage."""
    return FileService(session=session, storage=state.file_storage, limits=state.upload_limits)


FileServiceDep = Annotated[FileService, Depends(get_file_service)]


@answers(401, 503)  # the token's session is looked up in the database
async def get_principal(
    request: Request,
    state: StateDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """The caller behind the bearer token; 401 with a precise code otherwise."""
    if not token:
        raise Unauthorized("Not authenticated", code="not_authenticated")
    principal = await authenticate(state, token)
    request.state.user_id = str(principal.user.id)
    return principal


async def authenticate(state: AppState, token: str) -> Principal:
    """The caller behind an access token or a `vk-` API key (HTTP and WebSocket alike)."""
    if is_api_key(token):
        return await state.api_keys.authenticate(key=token)
    authenticator = TokenAuthenticator(db=state.db, tokens=state.tokens)
    return await authenticator.authenticate(access_token=token)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


@answers(403)  # api_key_not_allowed
async def get_signed_in_principal(principal: CurrentPrincipal) -> Principal:
    """The caller of a route that manages credentials: a signed-in session, never an API key."""
    if principal.api_key_id is not None:
        raise Forbidden(
            "API keys cannot manage credentials: sign in with your password",
            code="api_key_not_allowed",
        )
    return principal


# password, account deletion, API keys, sessions, logout, stream tickets
SignedInPrincipal = Annotated[Principal, Depends(get_signed_in_principal)]


async def get_api_key_service(
    state: StateDep, session: SessionDep, audit: AuditorDep
) -> ApiKeyService:
    """API key use cases bound to this request's session."""
    return ApiKeyService(session=session, hasher=state.api_keys.hasher, audit=audit)


ApiKeyServiceDep = Annotated[ApiKeyService, Depends(get_api_key_service)]


@answers(401, 503)  # a token or a ticket; its session (and the ticket ledger) is looked up
async def get_stream_principal(
    request: Request,
    state: StateDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    ticket: Annotated[
        str | None,
        Query(
            max_length=4096,
            description="a stream ticket from POST /auth/stream-ticket, for clients that "
            "cannot send an Authorization header (EventSource)",
        ),
    ] = None,
) -> AsyncIterator[Principal]:
    """The caller of a stream: bearer token, else a stream ticket held for the connection.

    With a ticket, a stream the ticket's user cannot see is 401 (the ticket does not open
    it), so missing and foreign ids stay indistinguishable."""
    if token or not ticket:
        yield await get_principal(request, state, token)
        return
    redeemed = await state.stream_tickets.redeem(
        ticket=ticket, path=request.url.path, resume="last-event-id" in request.headers
    )
    request.state.user_id = str(redeemed.principal.user.id)
    try:
        yield redeemed.principal
    except NotFound as exc:
        raise Unauthorized("This ticket does not open this stream", code="invalid_token") from exc
    finally:
        await redeemed.release()  # after the response: the stream has ended


# for the two GET stream routes; the connection holds its ticket until the stream ends
StreamPrincipal = Annotated[Principal, Depends(get_stream_principal)]


async def get_stream_user(principal: StreamPrincipal) -> User:
    """The authenticated user of a stream (bearer token or stream ticket)."""
    return principal.user


StreamUser = Annotated[User, Depends(get_stream_user)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    """The authenticated user."""
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


@answers(403)
async def get_admin_user(user: CurrentUser) -> User:
    """The authenticated user, who must be an admin."""
    if not user.is_admin:
        raise Forbidden("Administrator access required")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


async def get_models(state: StateDep) -> ModelRegistry:
    """The configured models."""
    return state.models


ModelsDep = Annotated[ModelRegistry, Depends(get_models)]


async def get_tools(request: Request) -> Toolbox:
    """The tools the model may call (MCP servers and adapters)."""
    state: AppState = request.app.state.vektor
    return state.tools


ToolsDep = Annotated[Toolbox, Depends(get_tools)]


async def get_shutdown(state: StateDep) -> StreamShutdown:
    """Ends open streams with a terminal event when the server stops."""
    return state.shutdown


ShutdownDep = Annotated[StreamShutdown, Depends(get_shutdown)]


def chat_service(state: AppState, *, models: ModelRegistry, tools: Toolbox) -> ChatService:
    """The chat use cases wired from the app's resources (HTTP routes and the WebSocket)."""
    return ChatService(
        settings=state.settings,
        limiter=state.limiter,
        session_factory=state.session_factory,
        models=models,
        tools=tools,
        generations=state.generations,
        writer=state.turn_writer,
        pending=state.pending_writes,
        storage=state.file_storage,
        upload_limits=state.upload_limits,
        quota=QuotaGuard(settings=state.settings, session_factory=state.session_factory),
    )


async def get_chat_service(state: StateDep, models: ModelsDep, tools: ToolsDep) -> ChatService:
    """Chat use cases (they open a session only when they must read)."""
    return chat_service(state, models=models, tools=tools)


ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]


@dataclass(frozen=True, slots=True)
class ChatStart:
    """What starting an answer needs: the caller, the chat use cases, the shutdown signal."""

    principal: Principal
    chat: ChatService
    shutdown: StreamShutdown


@answers(401, 503)  # the caller's token and session (get_principal)
async def start_chat(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    tools: ToolsDep,
) -> AsyncIterator[ChatStart]:
    """`POST /chat/stream`'s one dependency: admission, then the caller and the use cases.

    Admission lets a few chat requests at a time through their start-up work. Starting an
    answer is ~1 ms of event-loop work that never waits; 100 requests arriving together
    would run back to back in one loop pass and hold up the tokens of every open stream
    for ~100 ms. Each admitted request yields once, so the loop relays tokens between
    admissions; a lone request pays one loop pass. It is held until the route returns,
    not for the stream.

    Every dependency FastAPI solves costs event-loop time on the busiest route, so this
    one does in one step what `CurrentPrincipal`, `ChatServiceDep` and `ShutdownDep`
    would do in eight (tools stay a dependency: tests replace them)."""
    state: AppState = request.app.state.vektor
    async with state.chat_admission:
        await asyncio.sleep(0)
        principal = await get_principal(request, state, token)
        chat = chat_service(state, models=state.models, tools=tools)
        yield ChatStart(principal=principal, chat=chat, shutdown=state.shutdown)


# scope="function": admission ends when the route returns, not with the stream
ChatStarter = Annotated[ChatStart, Depends(start_chat, scope="function")]


async def get_history_service(session: SessionDep) -> HistoryService:
    """History use cases bound to this request's session."""
    return HistoryService(session=session)


HistoryServiceDep = Annotated[HistoryService, Depends(get_history_service)]


async def get_tree_edit_service(state: StateDep, session: SessionDep) -> TreeEditService:
    """Branch switches and subtree deletes bound to this request's session."""
    return TreeEditService(session=session, generations=state.generations)


TreeEditServiceDep = Annotated[TreeEditService, Depends(get_tree_edit_service)]


async def get_stream_tickets(state: StateDep) -> StreamTickets:
    """Issues and redeems stream tickets (browser EventSource clients)."""
    return state.stream_tickets


StreamTicketsDep = Annotated[StreamTickets, Depends(get_stream_tickets)]


async def get_sync_service(
    state: StateDep,
    settings: SettingsDep,
    session: SessionDep,
    shutdown: ShutdownDep,
    audit: AuditorDep,
) -> SyncService:
    """Sync and backup use cases bound to this request's session."""
    return SyncService(
        session=session,
        session_factory=state.session_factory,
        runtime=state.sync,
        revocations=state.revocations,
        shutdown=shutdown,
        ping_s=settings.sse_ping_seconds,
        max_import_bytes=settings.max_import_bytes,
        storage=state.file_storage,
        upload_limits=state.upload_limits,
        audit=audit,
    )


SyncServiceDep = Annotated[SyncService, Depends(get_sync_service)]


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


LoginCredentials = Annotated[LoginRequest, Depends(read_login)]
