"""LOG_FORMAT=json: one JSON object per log line, with the request's id, user and model attached.

Log shippers (journald's JSON export, Loki, CloudWatch) index fields instead of parsing text.
The message stays exactly what text mode prints, so the billing line is the same string in both
formats (in JSON it is the `message` field). Request context comes from a context variable the
metrics middleware sets, so no call site has to pass it along.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.appkeys import CLIENT_REQUEST_ID_KEY, METERING_KEY, REQUEST_ID_KEY
from aiproxy.observability.metrics import current_request

ACCESS_LOGGER = "aiproxy.requests"
_EXTRA_FIELDS = ("method", "path", "route", "status", "latency_ms")


class RequestContextFilter(logging.Filter):
    """Copies the current request's ids (the server's, and the client's X-Request-ID), user and
    model onto each record when it is emitted.

    Runs in the emitting task (formatting may happen later, e.g. in a queue handler or a test's
    capture), so the context variable is read while it still names the right request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request.get()
        if request is not None and not hasattr(record, "request_id"):
            record.request_id = request.get(REQUEST_ID_KEY)
            record.client_request_id = request.get(CLIENT_REQUEST_ID_KEY)
            metering = request.get(METERING_KEY)
            if metering is not None:
                record.user = metering.user
                record.model = metering.requested_model
                record.upstream_model = metering.upstream_model
        return True


# Attributes set by the filter or by a call site's `extra=` that belong in the JSON object.
_FIELDS = ("request_id", "client_request_id", "user", "model", "upstream_model") + _EXTRA_FIELDS


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return jsonutil.dumps_str(out)


_access = logging.getLogger(ACCESS_LOGGER)


def json_access_log(request: web.Request, route: str, status: int, elapsed: float) -> None:
    """One structured line per finished request (JSON mode only: text mode keeps its old output)."""
    if _access.isEnabledFor(logging.INFO):
        _access.info("%s %s %d", request.method, request.path, status,
                     extra={"method": request.method, "path": request.path, "route": route, "status": status,
                            "latency_ms": round(elapsed * 1000.0, 2)})
