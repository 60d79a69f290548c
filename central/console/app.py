"""Mount the console on the server's app: pages, JSON API, static files, and how staff refusals look."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from central.console import api, auth_pages, pages
from central.console.web import HERE, PREFIX, api_error, page_error
from central.staff.errors import StaffError


def install_console(app: FastAPI) -> None:
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
    app.include_router(auth_pages.router)
    app.include_router(api.router)
    app.include_router(pages.router)

    @app.exception_handler(StaffError)
    async def staff_refused(request: Request, exc: StaffError) -> Response:
        if request.url.path.startswith(f"{PREFIX}/api/"):
            return api_error(exc)
        return page_error(request, exc, None)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)
