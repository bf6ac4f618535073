"""The console log format for flows the command line runs in this process: one line a failure.

Prefect prints each failure with its full traceback, twice (task and flow) — over a hundred
lines for a refused data file. For the command line a failure is one ``error:`` line; the
Prefect API (the UI, ``prefect flow-run logs``) keeps every detail, because only the console
handler's formatting changes.
"""

from __future__ import annotations

import logging


class SummaryFormatter(logging.Formatter):
    """Formats like the wrapped formatter, but without tracebacks, and warnings and errors as
    their first line (the rest is in the API log)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        copy = logging.makeLogRecord(record.__dict__)  # the API handler still gets the original
        copy.exc_info = copy.exc_text = copy.stack_info = None
        text = self.inner.format(copy)
        if record.levelno >= logging.WARNING or record.exc_info:
            text = text.split("\n", 1)[0]
        return text


def summarize_console_logs() -> None:
    """Set up Prefect's logging now and give its console handlers the summary formatter."""
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    setup_logging()
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not isinstance(
                handler.formatter, SummaryFormatter
            ):
                handler.setFormatter(SummaryFormatter(handler.formatter or logging.Formatter()))
