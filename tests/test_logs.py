"""Log lines: JSON for machines, each line written whole."""

from __future__ import annotations

import io
import json

import structlog

from watcher.service import logs


class RecordingStream(io.StringIO):
    """A text stream that remembers each write call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_json_line_is_one_write_with_its_newline() -> None:
    stream = RecordingStream()
    logs.configure(format="json", level="info", stream=stream)
    try:
        structlog.get_logger().info("file_processed", file="a,b.png", status="ok")
        structlog.get_logger().debug("not_shown")
    finally:
        structlog.reset_defaults()
    assert len(stream.writes) == 1 and stream.writes[0].endswith("\n")
    line = json.loads(stream.writes[0])
    assert line["event"] == "file_processed" and line["file"] == "a,b.png" and line["level"] == "info"
