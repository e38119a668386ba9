"""Keep the API token out of the server's logs: uvicorn writes each request's query string, ?token= included."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

LOGGERS = ("uvicorn.access", "uvicorn.error")  # HTTP access lines; WebSocket "[accepted]"/"403" lines
MASK = "***"
QUERY_PAIR = re.compile(r'([?&])([^=&#\s"]*)=([^&#\s"]*)')  # one name=value of a query string


def redact_token(text: str) -> str:
    """`text` with the value of every `token` query parameter (also percent-encoded names) replaced by ***."""
    def mask(match: re.Match) -> str:
        if unquote_plus(match.group(2)) != "token":
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}={MASK}"

    return QUERY_PAIR.sub(mask, text)


class TokenRedactor(logging.Filter):
    """A logging filter that masks ?token= values in a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_token(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_token(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction(names: tuple[str, ...] = LOGGERS) -> None:
    """Add a TokenRedactor to each named logger (once); uvicorn's logging set-up keeps logger filters."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactor) for f in logger.filters):
            logger.addFilter(TokenRedactor())
