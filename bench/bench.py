"""Benchmark the daemon against the tutorial's loop and the I/O floor; prints a table and exits.

    .venv/bin/python bench/bench.py               # the targets, on a 3,000-file backlog
    .venv/bin/python bench/bench.py --scaling     # also backlogs of 3,000 and 30,000 files

Everything runs on this machine, in a temporary folder, with the shipped model.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watcher.model.synthetic import render_scan  # noqa: E402

MODEL = ROOT / "models" / "mnist-cnn"
SAMPLE = ROOT / "tests" / "data" / "mnist_sample.npz"
DISTINCT_SCANS = 500
SCAN_SIDE = 160
LATENCY_FILES = 250
DROP_EVERY_S = 0.040
TUTORIAL_FILES = 300
TARGETS = {
    "vs tutorial": 150.0,
    "vs I/O floor": 0.35,
    "latency p50 ms": 15.0,
    "latency p99 ms": 60.0,
    "ready s": 3.0,
    "rss MB": 700.0,
}


@dataclass
class DaemonRun:
    files_per_s: float
    ready_s: float
    peak_rss_mb: float
    latencies_ms: list[float]


def make_scans(folder: Path, count: int, *, seed: int = 7) -> list[str]:
    """Write `count` scan-like PNGs (MNIST test digits on paper, varied) and return their names."""
    sample = np.load(SAMPLE)
    rng = np.random.default_rng(seed)
    encoded = []
    for index in range(DISTINCT_SCANS):
        scan = render_scan(sample["x"][index % len(sample["x"])], rng, max_side=SCAN_SIDE)
        encoded.append(cv2.imencode(".png", scan)[1].tobytes())
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"scan-{number:06}.png" for number in range(count)]
    for number, name in enumerate(names):
        (folder / name).write_bytes(encoded[number % DISTINCT_SCANS])
    return names


class CsvTail:
    """Follows a results CSV from a thread, noting when each file's row appeared."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _follow(self) -> None:
        offset, pending = 0, b""
        while not self._stop.is_set():
            try:
                with open(self.path, "rb") as file:
                    file.seek(offset)
                    chunk = file.read()
            except FileNotFoundError:
                chunk = b""
            now = time.monotonic()
            if chunk:
                offset += len(chunk)
                lines = (pending + chunk).split(b"\r\n")
                pending = lines.pop()
                for line in lines:
                    self.seen.setdefault(line.split(b",", 2)[1].decode(), now)
            else:
                time.sleep(0.001)


class RssSampler:
    """Peak resident memory of a process and its worker processes, sampled every 20 ms from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def close(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            try:
                children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
                rss = sum(_rss_kb(pid) for pid in [self.pid, *map(int, children)])
            except FileNotFoundError:
                return
            self.peak_kb = max(self.peak_kb, rss)


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))


def run_daemon(work: Path, staging: Path, names: list[str], *, latency_names: list[str]) -> DaemonRun:
    """Start the real daemon, time READY, a backlog renamed in at once, then files dropped one by one."""
    inbox = work / "inbox"
    inbox.mkdir(parents=True)
    config = work / "config.yaml"
    config.write_text(f"model:\n  path: {MODEL}\nlog:\n  format: json\n  level: warning\n")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(work / "notify.sock"))
    notify.settimeout(60)
    started = time.monotonic()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "NOTIFY_SOCKET": str(work / "notify.sock")},
        stdout=subprocess.DEVNULL,
    )
    try:
        while b"READY=1" not in notify.recv(4096):
            pass
        ready_s = time.monotonic() - started
        rss = RssSampler(daemon.pid)
        tail = CsvTail(work / "results.csv")
        began = time.monotonic()
        for name in names:
            os.rename(staging / name, inbox / name)
        while len(tail.seen) < len(names):
            time.sleep(0.005)
        files_per_s = len(names) / (max(tail.seen.values()) - began)
        dropped: dict[str, float] = {}
        for name in latency_names:
            dropped[name] = time.monotonic()
            os.rename(staging / name, inbox / name)
            time.sleep(DROP_EVERY_S)
        deadline = time.monotonic() + 30
        while not set(dropped) <= set(tail.seen) and time.monotonic() < deadline:
            time.sleep(0.01)
        latencies = [(tail.seen[name] - dropped[name]) * 1000 for name in dropped]
        tail.close()
        return DaemonRun(files_per_s=files_per_s, ready_s=ready_s, peak_rss_mb=rss.close(), latencies_ms=latencies)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        notify.close()


def io_floor(folder: Path, names: list[str]) -> float:
    """Files per second for read, decode, sha256, append a row, rename: everything but the model."""
    done = folder / "done"
    done.mkdir()
    began = time.monotonic()
    with open(folder / "floor.csv", "a") as results:
        for name in names:
            data = (folder / name).read_bytes()
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            results.write(f"{name},{hashlib.sha256(data).hexdigest()}\r\n")
            results.flush()
            os.rename(folder / name, done / name)
    return len(names) / (time.monotonic() - began)


def tutorial_loop(folder: Path, names: list[str]) -> float:
    """Files per second for the tutorial's way: one `model.predict` per file, append, rename."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from watcher.intake.decode import decode
    from watcher.vision.normalise import normalise

    model = keras.models.load_model(max(MODEL.glob("[0-9]*/model.keras")))
    done = folder / "done-tutorial"
    done.mkdir()
    model.predict(np.zeros((1, 28, 28, 1), np.float32), verbose=0)
    began = time.monotonic()
    with open(folder / "tutorial.csv", "a") as results:
        for name in names:
            data = (folder / name).read_bytes()
            digit = normalise(decode(data, name=name, max_pixels=40_000_000))
            pixels = np.zeros((28, 28), np.float32) if digit is None else digit
            probabilities = model.predict(pixels[np.newaxis, :, :, np.newaxis], verbose=0)[0]
            results.write(f"{name},{int(probabilities.argmax())}\r\n")
            results.flush()
            os.rename(folder / name, done / name)
    return len(names) / (time.monotonic() - began)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def backlog(work: Path, count: int) -> DaemonRun:
    staging = work / "staging"
    names = make_scans(staging, count + LATENCY_FILES)
    return run_daemon(work / "daemon", staging, names[:count], latency_names=names[count:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000, help="backlog size for the main run (default 3000)")
    parser.add_argument("--scaling", action="store_true", help="also run backlogs of 3,000 and 30,000 files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dw-bench-", dir=ROOT / "bench") as temporary:
        work = Path(temporary)
        run = backlog(work / "main", args.files)
        shutil.rmtree(work / "main")
        floor_names = make_scans(work / "floor", args.files)
        floor = io_floor(work / "floor", floor_names)
        tutorial_names = make_scans(work / "tutorial", TUTORIAL_FILES)
        tutorial = tutorial_loop(work / "tutorial", tutorial_names)
        p50, p99 = percentile(run.latencies_ms, 0.50), percentile(run.latencies_ms, 0.99)
        measured = {
            "vs tutorial": run.files_per_s / tutorial,
            "vs I/O floor": run.files_per_s / floor,
            "latency p50 ms": p50,
            "latency p99 ms": p99,
            "ready s": run.ready_s,
            "rss MB": run.peak_rss_mb,
        }
        drop_gap_ms = DROP_EVERY_S * 1000
        heading = f"backlog of {args.files} files renamed in at once"
        print(f"\n{heading}; {LATENCY_FILES} files dropped {drop_gap_ms:.0f} ms apart\n")
        print(f"{'':22}{'files/s':>10}")
        print(f"{'daemon (backlog)':22}{run.files_per_s:>10.0f}")
        print(f"{'tutorial loop':22}{tutorial:>10.1f}")
        print(f"{'I/O floor':22}{floor:>10.0f}\n")
        print(f"{'measure':22}{'value':>10}{'target':>12}  met")
        all_met = True
        for measure, value in measured.items():
            target = TARGETS[measure]
            met = value >= target if measure.startswith("vs") else value <= target
            all_met &= met
            shown_target = (
                f"≥ {target:g}{'×' if measure == 'vs tutorial' else ''}"
                if measure.startswith("vs")
                else f"≤ {target:g}"
            )
            shown = (
                f"{value:.0f}×"
                if measure == "vs tutorial"
                else f"{value:.0%}"
                if measure == "vs I/O floor"
                else f"{value:.1f}"
            )
            print(f"{measure:22}{shown:>10}{shown_target:>12}  {'yes' if met else 'NO'}")
        if args.scaling:
            print(f"\n{'backlog':>10}{'ms/file':>10}{'peak RSS MB':>14}")
            for count in (3000, 30000):
                scaled = backlog(work / f"scale-{count}", count)
                shutil.rmtree(work / f"scale-{count}")
                print(f"{count:>10}{1000 / scaled.files_per_s:>10.3f}{scaled.peak_rss_mb:>14.0f}")
        print("\nall targets met" if all_met else "\nsome targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
