"""How much a file may hold and take to read: the config's `limits` section, owned here for intake and the readers
below the service to use (watcher.service.config loads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LimitsConfig:
    max_pixels: int = 40_000_000  # per page, as decoded or rendered
    max_bytes: int = 50_000_000
    max_pages: int = 2000
    page_timeout_s: float = 60.0
