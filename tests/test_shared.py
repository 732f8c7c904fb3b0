"""Sharing one inbox across hosts: daemons on separate GlusterFS client mounts of one volume (tests/gluster.py)."""

from __future__ import annotations

import fcntl
import os
import platform
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.conftest import write_config
from tests.daemons import DaemonProcess, write_e2e_config
from tests.gluster import Shared, Volume, complete_rows, unmount
from tests.helpers import drop, mnist_scans, wait_for
from tests.test_commit import open_ledger, processed, rows_of
from watcher.intake.observe import Inbox, ListingObserver, start_observer, stop_observer
from watcher.ledger import ledger as ledgers
from watcher.ledger import record
from watcher.ledger.ledger import Ledger, Processed
from watcher.ledger.record import Reading
from watcher.service import config as configuration
from watcher.vocabulary import Status

pytestmark = pytest.mark.gluster
KILLS = 2
DROP_SPACING_S = 0.05  # 60 files over 3 s: several of the polling observers' 0.5-s listings


def test_auto_polls_on_gluster_and_sees_another_clients_file(shared: Shared) -> None:
    here, elsewhere = shared.through[0], shared.through[1]
    inbox = Inbox(here, extensions=(".png",), settle_s=0.2)
    with capture_logs() as logs:
        observer = start_observer(inbox, polling="auto")
    try:
        assert isinstance(observer, ListingObserver)
        (elsewhere / "a.png.part").write_bytes(b"x")
        os.rename(elsewhere / "a.png.part", elsewhere / "a.png")
        taken = []
        for _ in range(100):
            taken += inbox.take(10, timeout=0.1)
            if taken:
                break
        assert [a.name for a in taken] == ["a.png"]
    finally:
        stop_observer(observer)
    (chosen,) = [entry for entry in logs if entry["event"] == "polling_chosen"]
    assert chosen["filesystem"] == "FUSE"


def test_a_file_another_client_is_still_writing_is_not_taken(shared: Shared) -> None:
    here, elsewhere = shared.through[0], shared.through[1]
    inbox = Inbox(here, extensions=(".png",), settle_s=0.2)
    assert inbox.shared
    chunks, written = 8, threading.Event()

    def scanner() -> None:
        # A slow scanner writing in place on another host: a chunk every 0.6 s, the name final from the start.
        with open(elsewhere / "slow.png", "wb") as file:
            for _ in range(chunks):
                file.write(b"x" * 1000)
                file.flush()
                os.fsync(file.fileno())
                time.sleep(0.6)
        written.set()

    writer = threading.Thread(target=scanner)
    writer.start()
    try:
        taken: list[str] = []
        deadline = time.monotonic() + 30
        while not taken and time.monotonic() < deadline:
            inbox.scan()
            taken = [arrival.name for arrival in inbox.take(10, timeout=0.1)]
        assert taken == ["slow.png"]
        assert written.is_set(), "taken while the other host was still writing it"
    finally:
        writer.join(timeout=30)
    assert (here / "slow.png").stat().st_size == chunks * 1000


def test_a_journal_replayed_through_another_client_writes_its_rows_once(
    shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = []
    for through in shared.through[:2]:
        write_config(through, "model:\n  path: models/fake\n")
        loaded = configuration.load(through / "config.yaml")
        configuration.prepare_folders(loaded)
        configs.append(loaded)
    host_a, host_b = (open_ledger(config) for config in configs)
    inbox_a, inbox_b = (config.paths.inbox for config in configs)

    def batch(ledger: Ledger, inbox: Path, first: int) -> list[Processed]:
        ledger.new_batch()
        reading = Reading(status=Status.OK, prediction="1", confidence=0.9)
        return [processed(ledger, inbox, f"{n}.png", reading) for n in range(first, first + 3)]

    # Each host appends in turn, so each client's view of results.csv lags the other's last batch.
    host_b.commit(batch(host_b, inbox_b, 0), model="fake/1")
    host_a.commit(batch(host_a, inbox_a, 3), model="fake/1")
    host_b.commit(batch(host_b, inbox_b, 6), model="fake/1")

    class Killed(BaseException):
        pass

    def killed(moves: object) -> None:
        raise Killed

    # Host A dies with its rows appended and its files not yet moved: the journal stays.
    monkeypatch.setattr(ledgers, "_finish_moves", killed)
    with pytest.raises(Killed):
        host_a.commit(batch(host_a, inbox_a, 9), model="fake/1")
    monkeypatch.undo()
    os.close(host_a.workspace._lock_fd)
    assert host_b.recover() == []
    host_b.close()

    rows = rows_of(shared.on_brick / "results.csv")
    assert [row[1] for row in rows] == [f"{n}.png" for n in range(12)]
    assert sorted(p.name for p in (shared.on_brick / "inbox" / "done").iterdir()) == sorted(
        f"{n}.png" for n in range(12)
    )


class Hosts:
    """Daemons on one shared folder, each through its own client mount, as on separate hosts."""

    def __init__(self, shared: Shared, *, files: int) -> None:
        self.shared = shared
        write_e2e_config(shared.through[0], extra="batch:\n  max_size: 16\n")
        scans = mnist_scans(10)
        self.names = [f"scan-{number:04}.png" for number in range(files)]
        self.scans = {name: scans[number % 10][1] for number, name in enumerate(self.names)}
        (shared.through[0] / "inbox").mkdir()
        self.daemons: list[DaemonProcess] = []

    def start(self, *clients: int, pinned: bool = False) -> list[DaemonProcess]:
        """A daemon on each client given, started side by side; `pinned` each to a core of its own (as `taskset`)."""
        daemons = [DaemonProcess(self.shared.through[n] / "config.yaml", name=f"client{n}") for n in clients]
        if pinned:
            pin_to_cores(daemons)
        self.daemons += daemons
        for daemon in daemons:
            daemon.wait_started()
        return daemons

    def drop(self, names: list[str], *, client: int) -> None:
        """Written beside the inbox and renamed in, through one client."""
        for name in names:
            drop(self.shared.through[client] / "inbox", name, self.scans[name])

    def rows(self) -> list[dict[str, str]]:
        """The complete rows of the results as the server holds them (a write may be under way)."""
        return complete_rows(self.shared.on_brick / "results.csv")

    def wait_for_rows(self, count: int, *, timeout: float = 60) -> list[dict[str, str]]:
        try:
            return wait_for(
                lambda: (rows := self.rows()) and len(rows) >= count and rows, timeout=timeout, what=f"{count} rows"
            )
        except AssertionError as exc:
            said = [f"{d.log_path.name}: {e}" for d in self.daemons for e in d.events() if e.get("level") != "info"]
            raise AssertionError(f"{exc}; {len(self.rows())} rows; the daemons said: {said}") from None

    def check_exactly_once(self) -> None:
        rows = self.rows()
        counted = Counter(row["file"] for row in rows)
        assert [name for name, count in counted.items() if count > 1] == [], "a file with two rows"
        assert sorted(counted) == self.names
        done = self.shared.on_brick / "inbox" / "done"
        assert sorted(p.name for p in done.iterdir()) == self.names, "each file placed once, under its own name"
        assert (self.shared.on_brick / "results.csv").read_bytes().count(b"time,file,status") == 1
        assert list((self.shared.on_brick / "inbox" / ".digit-watcher").iterdir()) == [], "no claim left behind"

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.close()


def pin_to_cores(daemons: list[DaemonProcess]) -> None:
    """Each daemon (and the workers it starts) on a core of its own, as `taskset` would: on a busy machine one
    host cannot starve the other of CPU, as two hosts would not."""
    cores = sorted(os.sched_getaffinity(0))
    for number, daemon in enumerate(daemons):
        os.sched_setaffinity(daemon.process.pid, {cores[number % len(cores)]})


@pytest.fixture
def hosts(shared: Shared, request: pytest.FixtureRequest) -> Iterator[Hosts]:
    """Hosts for 300 files; `@pytest.mark.parametrize("hosts", [N], indirect=True)` for N."""
    made = Hosts(shared, files=getattr(request, "param", 300))
    yield made
    made.close()


@pytest.mark.slow
@pytest.mark.parametrize("hosts", [2000], indirect=True)
def test_two_hosts_take_2000_files_streamed_through_three_clients_exactly_once(hosts: Hosts) -> None:
    daemons = hosts.start(0, 1, pinned=True)
    dropping = [
        threading.Thread(target=hosts.drop, args=(hosts.names[client::3],), kwargs={"client": client})
        for client in range(3)
    ]
    for thread in dropping:
        thread.start()
    for thread in dropping:
        thread.join()
    hosts.wait_for_rows(len(hosts.names), timeout=120)
    assert [daemon.terminate() for daemon in daemons] == [0, 0]
    hosts.check_exactly_once()
    taken = [{e["file"] for e in d.events() if e["event"] == "file_processed"} for d in daemons]
    assert all(taken), f"each daemon took files: {[len(files) for files in taken]}"


@pytest.mark.slow
def test_one_host_then_two_pinned_to_a_core_each_take_a_backlog_once_and_the_ratio_is_printed(shared: Shared) -> None:
    # Throughput is measured by bench/shared.py (2,000 files, with where the cores go); here it is only reported.
    rates = {}
    for count in (1, 2):
        part = Shared(tuple(path / f"{count}-hosts" for path in shared.through), shared.on_brick / f"{count}-hosts")
        part.through[0].mkdir()
        wait_for(lambda part=part: all(path.is_dir() for path in part.through), timeout=10, what="the folder")
        hosts = Hosts(part, files=300)
        try:
            hosts.drop(hosts.names, client=2)
            daemons = hosts.start(*range(count), pinned=True)
            begun = time.monotonic()
            hosts.wait_for_rows(len(hosts.names))
            rates[count] = len(hosts.names) / (time.monotonic() - begun)
            assert [daemon.terminate() for daemon in daemons] == [0] * count
            hosts.check_exactly_once()
        finally:
            hosts.close()
    ratio = rates[2] / rates[1]
    print(f"\n300 files on GlusterFS: 1 host {rates[1]:.1f} files/s, 2 hosts {rates[2]:.1f} ({ratio:.2f}x)")


@pytest.mark.slow
@pytest.mark.parametrize("hosts", [200], indirect=True)
def test_a_host_killed_mid_stream_leaves_no_row_twice_and_no_claim(hosts: Hosts) -> None:
    survivor, victim = hosts.start(1, 0)
    chance = random.Random(19)
    feeding = threading.Thread(target=feed, args=(hosts,))
    feeding.start()
    try:
        for kill in range(KILLS):
            if kill:
                (victim,) = hosts.start(0)
            before = len(victim.events())
            wait_for(
                lambda victim=victim, before=before: (
                    any(e["event"] == "file_processed" for e in victim.events()[before:]) or not feeding.is_alive()
                ),
                timeout=60,
                what="the victim's first rows",
            )
            time.sleep(chance.uniform(0, 0.3))  # a random instant of its stream, for the kill
            victim.kill()
    finally:
        feeding.join()
    hosts.wait_for_rows(len(hosts.names))
    # The survivor recovers the last victim's workspace at a rescan once its lock is free: only its own is left.
    work = hosts.shared.on_brick / "inbox" / ".digit-watcher"
    wait_for(lambda: len(list(work.iterdir())) == 1, what="the killed daemons' workspaces recovered")
    assert survivor.terminate() == 0
    hosts.check_exactly_once()
    # A restarted victim may recover the one before it, at its start; the survivor recovers the last.
    recovered = [e for d in hosts.daemons for e in d.events() if e["event"] == "recovered"]
    print(
        f"\n{len(hosts.names)} files, {KILLS} kills: {len(recovered)} workspaces recovered, "
        f"{sum(e['rows_finished'] for e in recovered)} journaled rows finished, "
        f"{sum(e['files_taken_over'] for e in recovered)} claimed files taken over"
    )
    assert len(recovered) == KILLS, "each killed daemon's work was finished"


def feed(hosts: Hosts) -> None:
    """Rename files in through the third client in bursts of ten, about a tenth of a second apart."""
    for start in range(0, len(hosts.names), 10):
        hosts.drop(hosts.names[start : start + 10], client=2)
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("hosts", [100], indirect=True)
def test_a_frozen_host_keeps_its_claims_while_its_lock_and_lease_hold(hosts: Hosts) -> None:
    (frozen,) = hosts.start(0)
    work = hosts.shared.on_brick / "inbox" / ".digit-watcher"
    hosts.drop(hosts.names, client=2)
    try:
        held = wait_for(lambda: freeze_holding_claims(hosts, frozen), timeout=60, what="a freeze with claims held")
        (other,) = hosts.start(1)
        hosts.wait_for_rows(len(hosts.names) - len(held))
        renewals = lease_count(hosts, other)
        # Through several of its rescans (one a second) and lease renewals, it leaves the frozen host's claims.
        wait_for(lambda: lease_count(hosts, other) >= renewals + 3, timeout=30, what="three more renewals of its lease")
        assert sorted(p.name for p in work.glob("*/*/*.png")) == held
        assert {row["file"] for row in hosts.rows()}.isdisjoint(held)
        assert not [e for e in other.events() if e["event"] == "recovered"]
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    hosts.wait_for_rows(len(hosts.names))
    assert [frozen.terminate(), other.terminate()] == [0, 0]
    hosts.check_exactly_once()


FLOCK_SYSCALL = {"x86_64": 73, "aarch64": 32}[platform.machine()]


def freeze_holding_claims(hosts: Hosts, daemon: DaemonProcess) -> list[str]:
    """SIGSTOP the daemon holding claimed files, neither holding nor awaiting the results lock; [] if it could not be.

    Frozen with the lock, or with its request for it queued at the server (granted once free), it would hold
    the lock every host needs to write rows, and no host could go on. So the test holds the lock itself while
    the daemon stops, and resumes it if any of its threads was waiting in flock.
    """
    fd = os.open(hosts.shared.through[2] / "results.csv", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        daemon.process.send_signal(signal.SIGSTOP)
        tasks = list(Path(f"/proc/{daemon.process.pid}/task").iterdir())
        wait_for(lambda: all(stopped(task) for task in tasks), timeout=10, what="every thread stopped")
        awaiting = any(int((task / "syscall").read_text().split()[0]) == FLOCK_SYSCALL for task in tasks)
        held = (
            []
            if awaiting
            else sorted(p.name for p in (hosts.shared.on_brick / "inbox" / ".digit-watcher").glob("*/*/*.png"))
        )
    finally:
        os.close(fd)
    if not held:
        daemon.process.send_signal(signal.SIGCONT)
    return held


def stopped(task: Path) -> bool:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except FileNotFoundError:
        return True  # a thread that ended


def lease_count(hosts: Hosts, daemon: DaemonProcess) -> int:
    """The counter of a daemon's lease (its workspace is named after its host and pid), as the server holds it."""
    work = hosts.shared.on_brick / "inbox" / ".digit-watcher"
    (lease,) = work.glob(f"{socket.gethostname()}-{daemon.process.pid}-*/lease")
    return int(lease.read_text(encoding="ascii").split()[1])


def test_a_header_another_client_just_wrote_is_not_written_again(shared: Shared) -> None:
    here, elsewhere = shared.through[0] / "results.csv", shared.through[1] / "results.csv"
    here.touch()
    assert elsewhere.stat().st_size == 0  # the other client now holds the file's size, 0, for a second
    with record.locked(here):
        pass  # writes the header
    with record.locked(elsewhere):
        pass  # finds it there, though its client still believes the file empty
    assert (shared.on_brick / "results.csv").read_bytes() == record.HEADER


@pytest.mark.slow
def test_a_host_whose_mount_goes_away_waits_and_finishes_everything_once_it_is_back(
    hosts: Hosts, gluster_volume: Volume, tmp_path: Path
) -> None:
    # Its log kept off the share, to be read while the share is away.
    daemon = DaemonProcess(hosts.shared.through[0] / "config.yaml", name="client0", log_folder=tmp_path)
    hosts.daemons.append(daemon)
    daemon.wait_started()
    hosts.drop(hosts.names[:150], client=1)
    hosts.wait_for_rows(20)
    # The share goes away under the daemon mid-stream, and comes back as a new mount of the same volume.
    mounted = gluster_volume.mounts[0]
    unmount(mounted)
    wait_for(lambda: any(e["event"] == "inbox_gone" for e in daemon.events()), what="the inbox missed")
    time.sleep(2)
    assert daemon.process.poll() is None, daemon.output()
    subprocess.run(
        ["mount", "-t", "glusterfs", f"{socket.gethostname()}:/{gluster_volume.name}", os.fspath(mounted)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    wait_for(lambda: any(e["event"] == "inbox_back" for e in daemon.events()), timeout=30, what="the inbox back")
    hosts.drop(hosts.names[150:], client=1)
    hosts.wait_for_rows(len(hosts.names))
    assert daemon.process.poll() is None, "resumed, not restarted"
    assert daemon.terminate() == 0
    hosts.check_exactly_once()
    assert [e["event"] for e in daemon.events() if e["event"] in ("inbox_gone", "inbox_back")] == [
        "inbox_gone",
        "inbox_back",
    ]


@pytest.mark.slow
def test_two_hosts_take_files_dropped_into_subfolders_by_a_third_exactly_once(shared: Shared) -> None:
    config = write_e2e_config(shared.through[0], extra="batch:\n  max_size: 16\n")
    config.write_text(config.read_text(encoding="utf-8").replace("watch:\n", "watch:\n  recursive: true\n"))
    scans = mnist_scans(10)
    names = [f"scanner{number % 3}/{number // 20}/scan-{number:03}.png" for number in range(60)]
    (shared.through[0] / "inbox").mkdir()
    daemons = [DaemonProcess(shared.through[n] / "config.yaml", name=f"client{n}") for n in (0, 1)]
    pin_to_cores(daemons)
    try:
        for daemon in daemons:
            daemon.wait_started()
        dropping = shared.through[2] / "inbox"
        for number, name in enumerate(names):
            (dropping / name).parent.mkdir(parents=True, exist_ok=True)
            drop((dropping / name).parent, os.path.basename(name), scans[number % 10][1])
            # Arriving over a few of the hosts' listings, as a scanner writes: all at once, the host whose listing
            # came first could read them all before the other's next listing (exactly once holds either way).
            time.sleep(DROP_SPACING_S)
        results = shared.on_brick / "results.csv"
        wait_for(lambda: len(complete_rows(results)) >= len(names), timeout=90, what=f"{len(names)} rows")
    finally:
        assert [daemon.terminate() for daemon in daemons] == [0, 0]
    counted = Counter(row["file"] for row in complete_rows(shared.on_brick / "results.csv"))
    assert sorted(counted) == sorted(names) and set(counted.values()) == {1}
    done = shared.on_brick / "inbox" / "done"
    assert sorted(str(path.relative_to(done)) for path in done.rglob("*.png")) == sorted(names)
    taken = [sum(e["event"] == "file_processed" for e in daemon.events()) for daemon in daemons]
    assert all(taken), f"each daemon took files: {taken}"
