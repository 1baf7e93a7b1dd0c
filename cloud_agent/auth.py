"""Bearer-token checks of the cloud agent's REST API.

Endpoints that change state always need the token; with no token configured they are
disabled (403), so a fresh install exposes nothing that writes. Read endpoints need it too
when `protect_reads` is on. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="the cloud agent's api_token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "no bearer token, or a wrong one"},
}
DISABLED: dict[int | str, dict[str, Any]] = {
    403: {"description": "state-changing endpoints are disabled: no api_token is configured"},
}


def _valid(credentials: HTTPAuthorizationCredentials | None, token: str) -> bool:
    if credentials is None or credentials.scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.credentials.encode(), token.encode())


def token_checker(token: str | None, required: bool) -> Callable[..., None]:
    """A FastAPI dependency: passes when `required` is off, else needs the bearer `token`
    (403 when there is none to compare with, 401 when the request's is missing or wrong).
    Only a required check names the bearer scheme, so the OpenAPI schema tells the truth."""

    def open_to_all() -> None:
        return None

    def check(credentials: Credentials) -> None:
        if token is None:
            raise HTTPException(403, "this endpoint is disabled: configure api_token "
                                     "(or api_token_file, or $HIERARCHY_API_TOKEN) to enable it")
        if not _valid(credentials, token):
            raise HTTPException(401, "a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})

    return check if required else open_to_all
