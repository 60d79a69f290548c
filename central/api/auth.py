"""Per-terminal HTTP Basic authentication for the kiosk API."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from central.api.errors import UNAUTHORIZED
from central.services import Services
from central.terminals import authenticate

_basic = HTTPBasic(auto_error=False, realm="kiosk", description="terminal id and secret from provision-terminal")


def services(request: Request) -> Services:
    return request.app.state.services


def terminal_id(request: Request,
                credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> str:
    """The authenticated terminal's id; anything else is a 401 that tells nothing about why."""
    if credentials is None or not credentials.username or not credentials.password:
        raise UNAUTHORIZED
    if not authenticate(services(request).sessions, credentials.username, credentials.password):
        raise UNAUTHORIZED
    return credentials.username


Terminal = Annotated[str, Depends(terminal_id)]
Svc = Annotated[Services, Depends(services)]
