"""The aggregate payment code (聚合码): one QR code on the kiosk that WeChat or Alipay can pay.

The code is a URL on this server. The app that scans it opens it with its own User-Agent; the server opens
that app's trade for the order (closing the other app's, if one was opened first) and sends the app on to
pay it. Anything else that opens the URL — a camera app, a browser — gets a page saying which apps can pay.
"""
from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from central import orders
from central.api.auth import Svc

router = APIRouter(tags=["payments"])

#: How each app names itself in its in-app browser's User-Agent.
APP_MARKERS = (("MicroMessenger", "wechat"), ("AlipayClient", "alipay"))


def app_of(user_agent: str) -> str | None:
    return next((provider for marker, provider in APP_MARKERS if marker in user_agent), None)


@router.get("/pay/q/{order_no}/{token}", include_in_schema=False)
def scan(order_no: str, token: str, request: Request, svc: Svc) -> Response:
    provider = app_of(request.headers.get("user-agent", ""))
    if provider is None:
        return _page("请使用微信或支付宝扫码支付", "Please scan this code with WeChat or Alipay", 200)
    try:
        code_url = orders.scan_aggregate(svc, order_no, token, provider)
    except orders.NotFound:
        return _page("未找到该订单", "Order not found", 404)
    except orders.ChannelBusy:
        return _page("支付渠道暂时无响应，请稍后再扫", "The payment service is busy; scan again in a moment", 503)
    except orders.OrderError as exc:
        return _page(exc.message, exc.message_en, 409)
    return RedirectResponse(code_url, status_code=302)


def _page(message: str, message_en: str, status: int) -> HTMLResponse:
    body = (f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{html.escape(message)}</title>"
            f"</head><body style='font-family:sans-serif;text-align:center;padding:3em 1em'>"
            f"<h1 style='font-size:1.6em'>{html.escape(message)}</h1>"
            f"<p style='color:#555'>{html.escape(message_en)}</p>"
            f"</body></html>")
    return HTMLResponse(body, status_code=status)
