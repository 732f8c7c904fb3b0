from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from watcher.ledger import record
from watcher.ledger.record import COLUMNS, Row


def a_row(**changes: str) -> Row:
    values = dict(
        zip(
            COLUMNS,
            [
                "2026-01-01T00:00:00.000Z",
                "a.png",
                "ok",
                "7",
                "0.9900",
                "7:0.9900 1:0.0010 2:0.0010",
                "m/1",
                "ab",
                "1.0",
                "inbox/done/a.png",
                "",
                "1",
                "",
            ],
            strict=True,
        )
    )
    values.update(changes)
    return Row(**values)


def test_columns_are_in_the_spec_order() -> None:
    assert COLUMNS == (
        "time",
        "file",
        "status",
        "prediction",
        "confidence",
        "top3",
        "model",
        "sha256",
        "latency_ms",
        "moved_to",
        "detail",
        "page",
        "field",
    )
    assert record.HEADER == (
        b"time,file,status,prediction,confidence,top3,model,sha256,latency_ms,moved_to,detail,page,field\r\n"
    )


def test_a_file_with_another_header_is_set_aside_not_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    old = record.encode([record.COLUMNS_BEFORE_PAGES, ["t", "a.png", "ok", "7", "", "", "m", "", "", "", ""]])
    path.write_bytes(old)
    (tmp_path / "results.old.csv").write_bytes(b"an older one")
    with record.locked(path) as results:
        results.append(record.encode([a_row()]))
    assert (tmp_path / "results.old-1.csv").read_bytes() == old, "moved aside whole, nothing overwritten"
    assert path.read_bytes() == record.HEADER + record.encode([a_row()])
    with record.locked(path) as results:
        assert results.size == len(path.read_bytes()), "this version's file is appended to"


def test_timestamp_is_utc_with_milliseconds() -> None:
    moment = datetime(2026, 11, 24, 22, 48, 34, 123456, tzinfo=UTC)
    assert record.timestamp(moment) == "2026-11-24T22:48:34.123Z"


def test_awkward_names_survive_a_round_trip() -> None:
    names = [
        "a,b.png",
        'say "hi".png',
        "two\nlines.png",
        "ünïcødé 数字.png",
        "=cmd|' /C calc'!A0.png",
        "+1.png",
        "-1.png",
        "@sum.png",
        "\ttab.png",
    ]
    data = record.encode([a_row(file=name) for name in names])
    parsed = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    shown = [cells[1] for cells in parsed]
    assert shown[:4] == names[:4]
    assert shown[4:] == ["'" + name for name in names[4:]]
    assert data.endswith(b"\r\n")


def test_decode_reads_back_what_encode_wrote() -> None:
    rows = [a_row(file="x,y\n.png"), a_row(status="error", detail="not a PNG image")]
    assert record.decode(record.encode(rows)) == rows


def test_header_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    for _ in range(3):
        with record.locked(path) as results:
            results.append(record.encode([a_row()]))
    lines = path.read_bytes().split(b"\r\n")
    assert lines[0] == record.HEADER.rstrip()
    assert lines.count(record.HEADER.rstrip()) == 1
    assert len([line for line in lines if line]) == 4


def test_a_torn_last_line_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    whole = record.HEADER + record.encode([a_row()])
    path.write_bytes(whole + b"2026-01-01T00:00:00.000Z,b.pn")
    with record.locked(path) as results:
        assert results.repair_torn_line() == len(b"2026-01-01T00:00:00.000Z,b.pn")
    assert path.read_bytes() == whole
    with record.locked(path) as results:
        assert results.repair_torn_line() == 0


def test_appends_from_many_processes_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    script = (
        "import sys; from pathlib import Path; from watcher.ledger import record; from tests.test_record import a_row\n"
        "for i in range(50):\n"
        "    with record.locked(Path(sys.argv[1])) as r:\n"
        "        r.append(record.encode([a_row(file=sys.argv[2] + str(i) + 'x' * 3000)]))\n"
    )
    root = Path(__file__).parent.parent
    workers = [subprocess.Popen([sys.executable, "-c", script, str(path), f"w{n}-"], cwd=root) for n in range(4)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0, 0]
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert rows[0] == list(COLUMNS)
    assert len(rows) == 201
    assert all(len(row) == len(COLUMNS) and row[2] == "ok" for row in rows[1:])
