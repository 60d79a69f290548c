"""One error shape for every failure: ``{"code", "message" (Chinese, for the patient), "message_en"}``.

The kiosk shows ``message`` as is, so it must be written for a patient, and a 500 must never carry a traceback.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from central.api.views import slot_view
from central.orders import ChannelBusy, Conflict, NotFound, OrderError, SlotUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, message_en: str, headers: dict[str, str] | None = None,
                 **extra: Any):
        super().__init__(f"{status} {code}")
        self.status, self.code, self.message, self.message_en = status, code, message, message_en
        self.headers = headers
        self.extra = extra


def error_response(status: int, code: str, message: str, message_en: str, *, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "message_en": message_en, **extra}, status_code=status,
                        headers=headers)


UNAUTHORIZED = ApiError(401, "UNAUTHORIZED", "终端未授权", "Terminal not authorised",
                        headers={"WWW-Authenticate": 'Basic realm="kiosk"'})

_HTTP_CODES = {
    404: ("NOT_FOUND", "未找到请求的资源", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "不支持该请求方式", "Method not allowed"),
    401: ("UNAUTHORIZED", "终端未授权", "Terminal not authorised"),
}


def _order_status(exc: OrderError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, (Conflict, SlotUnavailable)):
        return 409
    if isinstance(exc, ChannelBusy):
        return 503
    return 400


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.message_en, headers=exc.headers, **exc.extra)

    @app.exception_handler(OrderError)
    async def _order_error(request: Request, exc: OrderError) -> JSONResponse:
        extra = dict(exc.extra)
        if isinstance(exc, SlotUnavailable):
            extra["slots"] = [slot_view(slot) for slot in extra.get("slots", [])]
        return error_response(_order_status(exc), exc.code, exc.message, exc.message_en, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "BAD_REQUEST", "请求内容有误", f"Bad request: {_describe(list(exc.errors()))}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message, message_en = _HTTP_CODES.get(exc.status_code, ("BAD_REQUEST", "请求无法处理",
                                                                       str(exc.detail)))
        return error_response(exc.status_code, code, message, message_en,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "INTERNAL_ERROR", "系统繁忙，请稍后再试或到人工窗口办理",
                              "Internal error; please try again or go to a service counter")
