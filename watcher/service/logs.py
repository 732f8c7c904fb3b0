"""structlog set-up: a console renderer on a terminal, JSON lines otherwise (systemd's journal)."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

import structlog


def configure(*, format: str = "auto", level: str = "info", stream: TextIO = sys.stdout) -> None:
    """Route every log line to `stream`, rendered for a person or for a machine."""
    console = format == "console" or (format == "auto" and stream.isatty() and "JOURNAL_STREAM" not in os.environ)
    rendering = (
        [structlog.dev.ConsoleRenderer()]
        if console
        else [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *rendering,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # One write per line, newline included: with unbuffered output (systemd's PYTHONUNBUFFERED=1) print()
        # writes the line and its newline apart, and a daemon killed in between would leave a torn JSON line.
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
