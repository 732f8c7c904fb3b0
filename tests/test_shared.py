"""Sharing one inbox across hosts: daemons on separate GlusterFS client mounts of one volume."""

from __future__ import annotations

import pytest

from tests.gluster import Shared

pytestmark = pytest.mark.gluster


def test_the_clients_see_one_folder(shared: Shared) -> None:
    (shared.through[0] / "a").write_text("x")
    assert (shared.through[1] / "a").read_text() == "x"
