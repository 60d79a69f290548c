"""Payment notifications from the providers (``/api/v1/pay/...``): no terminal credentials, the provider's
signature is the authentication."""
from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from central import orders
from central.api.auth import Svc
from central.payments.alipay import NOTIFY_ACK
from central.payments.channel import ChannelError, SignatureError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/pay", tags=["payment notifications"])


async def raw_body(request: Request) -> bytes:
    """The exact bytes the provider signed (a sync route cannot await them itself)."""
    return await request.body()


@router.post("/wechat/notify", status_code=204, response_class=Response)
def wechat_notify(request: Request, svc: Svc, raw: Annotated[bytes, Depends(raw_body)]) -> Response:
    remote = request.client.host if request.client else "unknown"
    try:
        state = svc.channel.parse_notification(dict(request.headers), raw)
    except SignatureError:
        # Only the address: the body may carry personal data and is unproven anyway.
        log.warning("WeChat Pay notification with a bad signature from %s refused", remote)
        return JSONResponse({"code": "FAIL", "message": "签名错误"}, status_code=401)
    except ChannelError as exc:
        log.warning("WeChat Pay notification from %s not understood (%s)", remote, exc.code)
        return JSONResponse({"code": "FAIL", "message": "报文格式错误"}, status_code=400)
    orders.apply_trade_state(svc, state, actor="channel:notify", notified=True)
    return Response(status_code=204)



@router.post("/alipay/notify", response_class=PlainTextResponse)
def alipay_notify(request: Request, svc: Svc, raw: Annotated[bytes, Depends(raw_body)]) -> PlainTextResponse:
    """Alipay resends until it reads exactly `success`; anything else (`fail`) means "try again later"."""
    remote = request.client.host if request.client else "unknown"
    channel = svc.channels.get("alipay")
    if channel is None:
        return PlainTextResponse("fail", status_code=404)
    try:
        state = channel.parse_notification(dict(request.headers), raw)
    except SignatureError:
        log.warning("Alipay notification with a bad signature from %s refused", remote)
        return PlainTextResponse("fail", status_code=401)
    except ChannelError as exc:
        log.warning("Alipay notification from %s not understood (%s)", remote, exc.code)
        return PlainTextResponse("fail", status_code=400)
    orders.apply_trade_state(svc, state, actor="channel:notify", notified=True)
    return PlainTextResponse(NOTIFY_ACK)
