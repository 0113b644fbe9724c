"""The send log: one JSON Lines record per request the sender posted, with Meta's answer.

This is the format ``capi-diag report --send-log FILE`` reads (``docs/send-log.md``): each line is
``{"sent_at", "pixel_id", "request": {"data": [...], "test_event_code"?}, "http_status",
"response": {...}}`` where ``response`` is Meta's answer as Meta shaped it: on success
``{"events_received", "messages", "fbtrace_id"}``, on a refusal ``{"error": {"message", "type",
"code", "error_subcode", "error_user_title", "error_user_msg", "fbtrace_id"}}``. The access token is
never written: it travels in the Authorization header only, and each line is scrubbed of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from capi_diag.core.errors import UsageError
from capi_diag.meta.client import SendResult
from capi_diag.meta.payload import request_body
from capi_diag.meta.token import Secret, scrub


def record(*, sent_at: float, pixel_id: str, events: list[dict[str, Any]], test_event_code: str | None,
           result: SendResult) -> dict[str, Any]:
    """The send-log record of one request (pure)."""
    status = result.attempts[-1].status_code if result.attempts else None
    if result.error is not None:
        e = result.error
        error = {"message": e.meta_message, "type": e.type, "code": e.code, "error_subcode": e.error_subcode,
                 "error_user_title": e.user_title, "error_user_msg": e.user_msg, "fbtrace_id": e.fbtrace_id}
        response: dict[str, Any] = {"error": {k: v for k, v in error.items() if v is not None}}
        status = status if status is not None else e.http_status
    else:
        response = {"events_received": result.events_received, "messages": list(result.messages),
                    "fbtrace_id": result.fbtrace_id}
    return {"sent_at": int(sent_at), "pixel_id": str(pixel_id), "request": request_body(events, test_event_code),
            "http_status": status, "response": response}


def append(path: str | os.PathLike[str], rec: dict[str, Any], secret: Secret | None) -> None:
    """Append ``rec`` as one line to the send log at ``path`` (scrubbed of the token)."""
    line = json.dumps(scrub(rec, secret) if secret is not None else rec, ensure_ascii=False,
                      separators=(",", ":"), default=str)
    try:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError as e:
        raise UsageError(f"{path}: cannot append to the send log ({e.strerror}); choose a writable "
                         "--send-log-out path.") from None
