from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from watcher.ledger import claim
from watcher.ledger.lease import Leases


def test_a_claim_moves_the_file_into_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    workspace = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    taken = workspace.claim("a.png", ready_at=1.0)
    assert taken is not None and taken.path.read_bytes() == b"x" and taken.name == "a.png"
    assert not (tmp_path / "a.png").exists()
    assert workspace.claim("a.png", ready_at=1.0) is None, "already taken"
    taken.path.unlink()
    workspace.release(taken)
    workspace.close()
    assert not workspace.folder.exists()


def test_the_same_name_can_be_claimed_twice_in_flight(tmp_path: Path) -> None:
    workspace = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    (tmp_path / "a.png").write_bytes(b"first")
    first = workspace.claim("a.png", ready_at=1.0)
    (tmp_path / "a.png").write_bytes(b"second")
    second = workspace.claim("a.png", ready_at=1.0)
    assert first and second and first.path.read_bytes() == b"first" and second.path.read_bytes() == b"second"
    workspace.close()


def test_a_rename_that_answers_enoent_after_moving_the_file_is_still_a_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What NFS does when a rename's reply is lost: the retried request finds the source gone.
    rename = os.rename

    def retried(source: os.PathLike[str], target: os.PathLike[str]) -> None:
        rename(source, target)
        raise FileNotFoundError(2, "No such file or directory", os.fspath(source))

    workspace = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    (tmp_path / "a.png").write_bytes(b"x")
    monkeypatch.setattr(claim.os, "rename", retried)
    taken = workspace.claim("a.png", ready_at=1.0)
    assert taken is not None and taken.path.read_bytes() == b"x"
    assert workspace.claim("a.png", ready_at=1.0) is None, "truly gone: nothing in the workspace under that name"
    monkeypatch.undo()
    workspace.close()


def test_a_live_workspace_is_not_taken_for_dead(tmp_path: Path) -> None:
    root = tmp_path / ".digit-watcher"
    mine = claim.Workspace(root, inbox=tmp_path)
    other = claim.Workspace(root, inbox=tmp_path)
    assert claim.workspaces(root, own=mine) == [other.folder]
    with claim.dead_workspace(other.folder, leases=Leases(clock=time.monotonic)) as dead:
        assert not dead
    other.close()
    mine.close()


def test_a_killed_daemons_workspace_is_dead_and_keeps_its_claims(tmp_path: Path) -> None:
    root = tmp_path / ".digit-watcher"
    (tmp_path / "a.png").write_bytes(b"x")
    script = (
        "import os, sys; from pathlib import Path; from watcher.ledger import claim\n"
        "w = claim.Workspace(Path(sys.argv[1]), inbox=Path(sys.argv[2])); w.claim('a.png', ready_at=0.0)\n"
        "os._exit(9)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(root), str(tmp_path)], cwd=Path(__file__).parent.parent, check=False
    )
    mine = claim.Workspace(root, inbox=tmp_path)
    (dead_folder,) = claim.workspaces(root, own=mine)
    with claim.dead_workspace(dead_folder, leases=Leases(clock=time.monotonic)) as dead:
        assert dead
        (claim_folder,) = claim.claim_folders(dead_folder)
        (adopted,) = mine.adopt(claim_folder, ready_at=2.0)
        claim.remove_workspace(dead_folder)
    assert adopted.name == "a.png" and adopted.path.read_bytes() == b"x"
    assert claim.workspaces(root, own=mine) == []
    mine.close()
    assert mine.folder.exists(), "a workspace still holding a claim is left for recovery"


def test_a_claim_folder_is_taken_over_whole_with_what_was_kept_beside_its_files(tmp_path: Path) -> None:
    root = tmp_path / ".digit-watcher"
    dead_folder = root / "host-1-abc" / "3"
    dead_folder.mkdir(parents=True)
    (dead_folder / "a.pdf").write_bytes(b"a")
    (dead_folder / "b.png").write_bytes(b"b")
    (dead_folder / ".a.pdf.pages.jsonl").write_bytes(b"{}\n")
    leftovers = root / "host-1-abc" / "4"
    leftovers.mkdir()
    (leftovers / ".c.pdf.pages.jsonl").write_bytes(b"{}\n")
    mine = claim.Workspace(root, inbox=tmp_path)
    adopted = mine.adopt(dead_folder, ready_at=1.0)
    assert [c.name for c in adopted] == ["a.pdf", "b.png"]
    assert (adopted[0].path.parent / ".a.pdf.pages.jsonl").read_bytes() == b"{}\n"
    assert mine.adopt(leftovers, ready_at=1.0) == [] and not leftovers.exists()
    assert sorted(p.name for p in mine.folder.iterdir()) == ["1", "lease", "lock"], "the leftovers' folder is not kept"
    mine.close()


def test_workspace_ids_name_the_host_and_never_repeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "scanner")  # two hosts of one name, as containers often are
    root = tmp_path / ".digit-watcher"
    ids = set()
    for _ in range(50):
        workspace = claim.Workspace(root, inbox=tmp_path)
        ids.add(workspace.id)
        workspace.close()
    assert len(ids) == 50 and all(id.startswith(f"scanner-{os.getpid()}-") for id in ids)
