"""The report page: HTML with inline CSS and SVG charts, no scripts, every CSV text escaped."""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from watcher.report.counts import Summary, Thumbnail
from watcher.vocabulary import Status

if TYPE_CHECKING:
    from watcher.report.forms import Tally

STATUS_COLOURS: dict[str, str] = {  # keyed by the CSV's text, which may hold statuses of other versions
    Status.OK: "#2e7d32",
    Status.LOW_CONFIDENCE: "#e09c00",
    Status.NO_DIGIT: "#8d99a6",
    Status.ERROR: "#c62828",
    Status.VERIFIED: "#1565c0",
    Status.CORRECTED: "#ad1457",
}
OTHER_COLOUR = "#6a1b9a"
DIGIT_COLOUR = "#3f51b5"
NUMBERS_COLOUR = "#9fa8da"
THROUGHPUT_COLOUR = "#00838f"
MAX_FOLDERS = 50  # rows of the by-folder table: the busiest folders
# Controls and bidi overrides would hide or disguise parts of a file name, so they are shown as escapes.
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

CSS = """
:root { font-family: system-ui, "DejaVu Sans", sans-serif; color: #1f2933; background: #f4f6f8; }
body { margin: 0 auto; max-width: 1120px; padding: 24px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 0 0 12px; font-size: 18px; }
.meta, .note { color: #52606d; margin: 0; font-size: 14px; }
section { background: #fff; border-radius: 10px; padding: 18px 20px; margin-top: 18px;
  box-shadow: 0 1px 3px rgba(0, 0, 0, .08); }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
.pair section { margin-top: 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card { border-left: 6px solid var(--colour); background: #f8fafc; border-radius: 6px; padding: 10px 14px; }
.card .count { display: block; font-size: 28px; font-weight: 700; }
.card .label { font-weight: 600; color: var(--colour); }
.card .share { float: right; color: #52606d; }
.proportion { display: flex; height: 12px; border-radius: 6px; overflow: hidden; margin-top: 14px;
  background: #e4e7eb; }
.proportion span { background: var(--colour); }
svg { display: block; width: 100%; height: auto; }
svg text { font-size: 11px; fill: #52606d; }
svg .value { fill: #1f2933; font-weight: 600; }
svg .grid { stroke: #e4e7eb; }
.legend { display: flex; gap: 14px; font-size: 13px; margin-top: 6px; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 10px; margin-right: 5px;
  border-radius: 2px; background: var(--colour); }
.sheet { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; }
.tile { margin: 0; border: 1px solid #e4e7eb; border-top: 4px solid var(--colour); border-radius: 6px;
  padding: 8px; display: flex; flex-direction: column; gap: 4px; font-size: 12px; min-width: 0; }
.tile img, .tile .placeholder { width: 96px; height: 96px; align-self: center; }
.tile img { object-fit: contain; image-rendering: pixelated; background: #fff; }
.placeholder { box-sizing: border-box; display: flex; align-items: center; justify-content: center;
  text-align: center; padding: 4px; font-size: 10px; color: #7b8794; background: repeating-linear-gradient(
  45deg, #f5f7fa, #f5f7fa 6px, #e4e7eb 6px, #e4e7eb 12px); border-radius: 4px; overflow: hidden; }
.name { font-weight: 600; white-space: pre-wrap; overflow-wrap: anywhere; }
.status { color: var(--colour); font-weight: 600; }
.detail { color: #52606d; white-space: pre-wrap; overflow-wrap: anywhere; }
time { display: block; color: #7b8794; }
table { border-collapse: collapse; font-size: 14px; margin-top: 10px; }
th, td { text-align: right; padding: 4px 12px; border-bottom: 1px solid #e4e7eb; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
"""


@dataclass(frozen=True)
class Bar:
    """One bar of a chart: stacked (count, colour) segments from the bottom up."""

    segments: tuple[tuple[int, str], ...]
    tooltip: str

    @property
    def total(self) -> int:
        return sum(count for count, _ in self.segments)


def render(
    summary: Summary,
    thumbnails: Sequence[Thumbnail],
    forms: Mapping[str, Tally],
    *,
    results: Path,
    generated: datetime,
) -> str:
    """The whole page."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>digit-watcher report</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>digit-watcher report</h1>
<p class="meta">{overview(summary, results=results, generated=generated)}</p>
</header>
{status_section(summary)}
<div class="pair">
{digits_section(summary)}
{confidence_section(summary)}
</div>
{throughput_section(summary)}
{review_section(summary)}
{forms_section(forms)}
{folders_section(summary)}
{sheet_section(summary, thumbnails)}
</body>
</html>
"""


def text(value: str) -> str:
    """CSV text made safe and visible inside HTML elements and attributes."""
    return html.escape(INVISIBLE.sub(escape_invisible, value))


def escape_invisible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def count(value: int) -> str:
    return f"{value:,}"


def compact(value: int) -> str:
    """A count short enough to sit above a bar or beside an axis: 950, 9.5k, 95k, 1.2M."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if value >= size:
            scaled = value / size
            return f"{scaled:.0f}{suffix}" if scaled >= 10 else f"{scaled:.1f}{suffix}"
    return str(value)


def moment_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def overview(summary: Summary, *, results: Path, generated: datetime) -> str:
    parts = [text(str(results)), f"{count(summary.rows)} rows"]
    span = summary.span()
    if span:
        parts.append(f"{moment_text(span[0])} – {moment_text(span[1])}")
    if summary.malformed_rows:
        parts.append(f"{count(summary.malformed_rows)} malformed rows skipped")
    parts.append(f"generated {moment_text(generated)}")
    return " · ".join(parts)


def status_section(summary: Summary) -> str:
    shown = {status: summary.by_status[status] for status in STATUS_COLOURS}
    other = summary.rows - sum(shown.values())
    if other:
        shown["other"] = other
    cards = []
    stripes = []
    for status, number in shown.items():
        colour = STATUS_COLOURS.get(status, OTHER_COLOUR)
        share = f"{100 * number / summary.rows:.1f} %" if summary.rows else "–"
        cards.append(
            f'<div class="card" id="status-{status}" style="--colour: {colour}">'
            f'<span class="count">{count(number)}</span><span class="label">{status}</span>'
            f'<span class="share">{share}</span></div>'
        )
        if number:
            stripes.append(
                f'<span style="--colour: {colour}; flex-grow: {number}" title="{status}: {count(number)}"></span>'
            )
    return f"""<section id="status">
<h2>Status</h2>
<div class="cards">{"".join(cards)}</div>
<div class="proportion">{"".join(stripes)}</div>
</section>"""


def digits_section(summary: Summary) -> str:
    digits = [str(digit) for digit in range(10)]
    bars = [
        Bar(((summary.by_digit[digit], DIGIT_COLOUR),), f"{digit}: {count(summary.by_digit[digit])}")
        for digit in digits
    ]
    bars.append(Bar(((summary.numbers, NUMBERS_COLOUR),), f"multi-digit numbers: {count(summary.numbers)}"))
    ticks = [(index + 0.5, label) for index, label in enumerate([*digits, "numbers"])]
    chart = bar_chart(bars, ticks=ticks, show_values=True, title="Predictions by digit")
    return f"""<section id="digits">
<h2>Predicted digits</h2>
{chart}
<p class="note">A multi-digit scan (e.g. 2024) counts once, under “numbers”.</p>
</section>"""


def confidence_section(summary: Summary) -> str:
    order = [status for status in STATUS_COLOURS if status in summary.confidence_bins]
    order += sorted(set(summary.confidence_bins) - set(order))
    bin_count = len(next(iter(summary.confidence_bins.values()), []))
    bars = []
    for index in range(bin_count):
        segments = tuple(
            (summary.confidence_bins[status][index], STATUS_COLOURS.get(status, OTHER_COLOUR)) for status in order
        )
        low, high = index / bin_count, (index + 1) / bin_count
        breakdown = ", ".join(f"{status} {count(n)}" for status, (n, _) in zip(order, segments, strict=True))
        bars.append(Bar(segments, f"{low:.2f}–{high:.2f}: {breakdown}"))
    ticks = [(bin_count * fifth / 5, f"{fifth / 5:.1f}") for fifth in range(6)] if bin_count else []
    legend = "".join(
        f'<span style="--colour: {STATUS_COLOURS.get(status, OTHER_COLOUR)}">{text(status)}</span>' for status in order
    )
    body = (
        bar_chart(bars, ticks=ticks, title="Confidence histogram")
        if bars
        else '<p class="note">No confidences yet.</p>'
    )
    return f"""<section id="confidence">
<h2>Confidence</h2>
{body}
<div class="legend">{legend}</div>
</section>"""


def throughput_section(summary: Summary) -> str:
    minutes = summary.throughput()
    if not minutes:
        return '<section id="throughput"><h2>Throughput</h2><p class="note">No timed rows yet.</p></section>'
    in_hour = sum(number for _, number in minutes)
    peak = max(number for _, number in minutes)
    end = minutes[-1][0]
    bars = [
        Bar(((number, THROUGHPUT_COLOUR),), f"{minute:%H:%M} UTC: {count(number)} rows") for minute, number in minutes
    ]
    ticks = [(index + 0.5, f"{minute:%H:%M}") for index, (minute, _) in enumerate(minutes) if minute.minute % 10 == 0]
    lines = [
        f"Last hour up to the newest row ({end:%Y-%m-%d %H:%M} UTC): <strong>{count(in_hour)}</strong> rows, "
        f"{in_hour / len(minutes):.1f} per minute on average, peak {count(peak)} per minute."
    ]
    span = summary.span()
    span_minutes = (span[1] - span[0]).total_seconds() / 60 if span else 0.0
    if span_minutes:
        rate = summary.rows / span_minutes
        lines.append(f"Whole file: {count(summary.rows)} rows over {duration(span_minutes)}, {rate:.1f} per minute.")
    return f"""<section id="throughput">
<h2>Throughput</h2>
<p class="note" id="throughput-summary">{" ".join(lines)}</p>
{bar_chart(bars, ticks=ticks, width=1060, height=180, title="Rows per minute, last hour")}
</section>"""


def review_section(summary: Summary) -> str:
    """Review decisions per person and per day, and the share the person corrected (the model read it wrong)."""
    if not summary.reviews:
        return '<section id="review"><h2>Review decisions</h2><p class="note">None yet.</p></section>'
    days: dict[tuple[str, str], Counter[str]] = {}
    for (person, day, status), number in summary.reviews.items():
        days.setdefault((day, person), Counter())[status] += number
    total = Counter[str]()
    for counts in days.values():
        total.update(counts)
    lines = []
    for (day, person), counts in sorted(days.items(), reverse=True):
        decided = counts[Status.VERIFIED] + counts[Status.CORRECTED]
        lines.append(
            f'<tr><td>{text(day)}</td><td class="name">{text(person)}</td><td>{count(decided)}</td>'
            f"<td>{count(counts[Status.VERIFIED])}</td><td>{count(counts[Status.CORRECTED])}</td>"
            f"<td>{100 * counts[Status.CORRECTED] / decided:.1f} %</td></tr>"
        )
    decided = total[Status.VERIFIED] + total[Status.CORRECTED]
    people = len({person for _, person in days})
    who = f"{count(people)} {'person' if people == 1 else 'people'}"
    return f"""<section id="review">
<h2>Review decisions</h2>
<p class="note" id="review-summary">{count(decided)} decisions by {who}:
{100 * total[Status.CORRECTED] / decided:.1f} % corrected (the model read them wrong),
{100 * total[Status.VERIFIED] / decided:.1f} % verified.</p>
<table>
<thead><tr><th>day (UTC)</th><th>person</th><th>decisions</th><th>verified</th><th>corrected</th>
<th>share corrected</th></tr></thead>
<tbody>
{"".join(lines)}
</tbody>
</table>
</section>"""


def forms_section(forms: Mapping[str, Tally]) -> str:
    """Per form template: pages read, fields, what went to review, empty fields, pages that aligned with none."""
    if not forms:
        return ""
    lines = []
    for name, tally in sorted(forms.items()):
        inliers = f"{sum(tally.inliers) / len(tally.inliers):.0f}" if tally.inliers else "–"
        review = f"{count(tally.to_review)} ({100 * tally.to_review / tally.fields:.1f} %)" if tally.fields else "0"
        lines.append(
            f'<tr><td class="name">{text(name)}</td><td>{count(tally.pages)}</td><td>{count(tally.fields)}</td>'
            f"<td>{review}</td><td>{count(tally.empty)}</td><td>{count(tally.unaligned)}</td>"
            f"<td>{count(tally.final)}</td><td>{inliers}</td></tr>"
        )
    return f"""<section id="forms">
<h2>Forms</h2>
<table>
<thead><tr><th>template</th><th>pages read</th><th>fields read</th><th>fields to review</th><th>empty fields</th>
<th>pages aligned with none (this the closest)</th><th>rows in forms/NAME.csv</th><th>mean inliers</th></tr></thead>
<tbody>
{"".join(lines)}
</tbody>
</table>
<p class="note">A page whose fields were all final at once, or after review, has its row in the template's
forms CSV.</p>
</section>"""


def folders_section(summary: Summary) -> str:
    """The readings per top folder of the inbox (with `watch.recursive`: a scanner or a department each), the
    busiest first; nothing when every file came from the top level."""
    folders: dict[str, Counter[str]] = {}
    for (folder, status), number in summary.by_folder.items():
        folders.setdefault(folder, Counter())[status] += number
    if set(folders) <= {""}:
        return ""
    shown = (Status.OK, Status.LOW_CONFIDENCE, Status.NO_DIGIT, Status.ERROR)
    lines = []
    for folder, counts in sorted(folders.items(), key=lambda item: (-item[1].total(), item[0]))[:MAX_FOLDERS]:
        name = text(f"{folder}/") if folder else '<span class="note">(top level)</span>'
        cells = "".join(f"<td>{count(counts[status])}</td>" for status in shown)
        lines.append(f'<tr><td class="name">{name}</td><td>{count(counts.total())}</td>{cells}</tr>')
    more = len(folders) - MAX_FOLDERS
    note = f'<p class="note">…and {count(more)} more folders.</p>' if more > 0 else ""
    return f"""<section id="folders">
<h2>By folder</h2>
<table>
<thead><tr><th>folder</th><th>readings</th>{"".join(f"<th>{status}</th>" for status in shown)}</tr></thead>
<tbody>
{"".join(lines)}
</tbody>
</table>
{note}
</section>"""


def duration(minutes: float) -> str:
    """'3 d 4 h', '2 h 5 min' or '7 min': the two largest units are enough to read a span."""
    days, rest = divmod(round(minutes), 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{max(mins, 1)} min"


def sheet_section(summary: Summary, thumbnails: Sequence[Thumbnail]) -> str:
    total = summary.by_status[Status.LOW_CONFIDENCE] + summary.by_status[Status.ERROR]
    if not thumbnails:
        return '<section id="sheet"><h2>Review and error files</h2><p class="note">None.</p></section>'
    tiles = "\n".join(tile(thumbnail) for thumbnail in thumbnails)
    return f"""<section id="sheet">
<h2>Review and error files</h2>
<p class="note">The newest {count(len(thumbnails))} of {count(total)}, newest first.</p>
<div class="sheet">
{tiles}
</div>
</section>"""


def tile(thumbnail: Thumbnail) -> str:
    row = thumbnail.row
    name = text(row.file) + (f" · page {row.page}" if row.page > 1 else "")
    if thumbnail.png_data_uri:
        picture = f'<img src="{thumbnail.png_data_uri}" alt="{name}" title="{text(row.moved_to)}">'
    else:
        picture = f'<div class="placeholder" title="{text(row.moved_to)}">{text(thumbnail.missing_reason or "")}</div>'
    if row.prediction:
        guess = f"→ {text(row.prediction)}" + (f" ({text(row.confidence)})" if row.confidence else "")
    else:
        guess = "no prediction"
    detail = f'<div class="detail">{text(row.detail)}</div>' if row.detail else ""
    colour = STATUS_COLOURS.get(row.status, OTHER_COLOUR)
    return (
        f'<figure class="tile" style="--colour: {colour}">{picture}<figcaption>'
        f'<div class="name">{name}</div><div><span class="status">{text(row.status)}</span> {guess}</div>'
        f"{detail}<time>{moment_text(row.moment) if row.moment else text(row.time)}</time></figcaption></figure>"
    )


def bar_chart(
    bars: Sequence[Bar],
    *,
    ticks: Sequence[tuple[float, str]],
    title: str,
    width: int = 420,
    height: int = 200,
    show_values: bool = False,
) -> str:
    """An inline SVG bar chart, drawn at about its viewBox size; `ticks` are (bar widths from the left, label)."""
    left, right, top, bottom = 40, 8, 16, 22
    plot_width, plot_height = width - left - right, height - top - bottom
    step, ceiling = y_scale(max((bar.total for bar in bars), default=0))
    slot = plot_width / len(bars)
    bar_width = slot * 0.76
    label = html.escape(title)
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{label}"><title>{label}</title>']
    for value in range(0, ceiling + 1, step):
        y = top + plot_height * (1 - value / ceiling)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{compact(value)}</text>')
    for index, bar in enumerate(bars):
        x = left + index * slot + (slot - bar_width) / 2
        base = float(top + plot_height)
        parts.append(f"<g><title>{text(bar.tooltip)}</title>")
        for number, colour in bar.segments:
            if number:
                segment_height = plot_height * number / ceiling
                base -= segment_height
                parts.append(
                    f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_width:.1f}" height="{segment_height:.1f}"'
                    f' fill="{colour}"/>'
                )
        parts.append("</g>")
        if show_values and bar.total:
            parts.append(
                f'<text class="value" x="{x + bar_width / 2:.1f}" y="{base - 4:.1f}" text-anchor="middle">'
                f"{compact(bar.total)}</text>"
            )
    for position, tick in ticks:
        x = left + position * slot
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle">{html.escape(tick)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def y_scale(highest: int) -> tuple[int, int]:
    """(gridline step, axis top): a 1-2-5 step giving at most four gridlines above zero."""
    step = 1
    while highest > 4 * step:
        magnitude = 10 ** math.floor(math.log10(step))
        step = next(candidate * magnitude for candidate in (1, 2, 5, 10) if candidate * magnitude > step)
    return step, max(step, math.ceil(highest / step) * step)
