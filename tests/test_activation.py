"""Socket activation's variables: taken only when they name this process, and never left for its children."""

from __future__ import annotations

import os

import pytest

from watcher.service.activation import passed_socket


@pytest.mark.parametrize(
    "variables",
    [
        {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "digit-watcher.socket"},  # a parent's, inherited
        {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"},
        {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "many"},
        {"LISTEN_FDS": "1"},
        {},
    ],
)
def test_sockets_for_another_process_or_none_are_not_taken_and_their_variables_go(variables: dict[str, str]) -> None:
    environ = {"PATH": "/usr/bin", **variables}
    assert passed_socket(environ) is None
    assert environ == {"PATH": "/usr/bin"}
