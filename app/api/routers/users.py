"""`/users`: profile, password, account deletion, preferences."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from app.api.deps import CurrentUser, SignedInPrincipal, UserServiceDep
from app.api.deps_system import UsageServiceDep
from app.api.openapi import errors
from app.schemas.usage import MyUsageReport
from app.schemas.user import (
    AccountDelete,
    PasswordChange,
    Preferences,
    PreferencesUpdate,
    UserRead,
    UserUpdate,
)

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserRead)
async def read_me(user: CurrentUser) -> Any:
    """The current user's profile."""
    return user


@router.get(
    "/me/usage",
    response_model=MyUsageReport,
    responses=errors((422, "`validation_error`: a bad date, `to` before `from`, > 366 days")),
)
async def read_my_usage(
    user: CurrentUser,
    usage: UsageServiceDep,
    start: Annotated[date | None, Query(alias="from", description="first day (UTC)")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day (UTC), included")] = None,
    group_by: Literal["day", "model"] = "day",
) -> Any:
    """My tokens and cost per day or model (default: this month), and my quota."""
    return await usage.mine(user=user, start=start, end=end, group_by=group_by)


@router.put(
    "/me",
    response_model=UserRead,
    responses=errors(
        (409, "`email_taken` or `username_taken`"),
        (422, "`validation_error`: `email` or `username` sent as null"),
    ),
)
async def update_me(body: UserUpdate, user: CurrentUser, users: UserServiceDep) -> Any:
    """Update email, username, full name or avatar URL."""
    return await users.update_profile(user=user, data=body)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
async def delete_me(
    body: AccountDelete, principal: SignedInPrincipal, users: UserServiceDep
) -> Response:
    """Delete the account and all its data (needs the password)."""
    await users.delete_account(user=principal.user, password=body.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/change-password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: PasswordChange, principal: SignedInPrincipal, users: UserServiceDep
) -> Response:
    """Change the password; every other session is signed out."""
    await users.change_password(
        user=principal.user,
        current_session_id=principal.session_id,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/preferences", response_model=Preferences)
async def read_preferences(user: CurrentUser, users: UserServiceDep) -> Any:
    """The current user's preferences (defaults for a new user)."""
    return await users.get_preferences(user=user)


@router.put(
    "/preferences",
    response_model=Preferences,
    responses=errors(
        (
            422,
            "`validation_error`: a field sent as null that needs a value, `extra` too large",
        )
    ),
)
async def update_preferences(
    body: PreferencesUpdate, user: CurrentUser, users: UserServiceDep
) -> Any:
    """Replace the preference fields sent; keep the others."""
    return await users.update_preferences(user=user, data=body)
