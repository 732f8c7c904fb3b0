"""Form templates (SPEC "Form templates"): one YAML file per layout, loaded into frozen, validated objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

import numpy as np
import yaml

from watcher.forms.features import MIN_REFERENCE_FEATURES, features, grey
from watcher.intake.decode import Unreadable
from watcher.intake.pages import open_pages

Kind = Literal["digit", "number", "comb"]
KINDS: tuple[str, ...] = get_args(Kind)
TEMPLATE_SUFFIX = ".yaml"
FIELD_KEYS = ("box", "kind", "cells", "digits", "range", "check")
CHECKS = ("luhn",)
# The columns of forms/NAME.csv around its fields, named once here: a field may not take one of these names.
PAGE_COLUMNS = ("file", "page")
TAIL_COLUMNS = ("status", "detail", "inliers", "inlier_share", "residual_px", "time", "sha256")
REFERENCE_MAX_PIXELS = 200_000_000  # a blank form at 600 dpi on A3 is 70 Mpx; a reference is the user's own file
REFERENCE_PDF_DPI = 300  # a drawn (not scanned) PDF reference is rendered at this resolution; boxes are in its pixels


class TemplateError(Exception):
    """A template mistake, told in one line naming the file and key (exit 78 from `check`)."""


@dataclass(frozen=True)
class Field:
    """One named field: its box (x, y, width, height) in the reference's pixels, what is written in it, its rules."""

    name: str
    box: tuple[int, int, int, int]
    kind: Kind
    cells: int = 1  # a comb's printed cells; 1 for the other kinds
    digits: tuple[int, int] | None = None  # the allowed count of digits, inclusive
    range: tuple[int, int] | None = None  # the allowed values, inclusive
    check: Literal["luhn"] | None = None


@dataclass(frozen=True)
class Template:
    """A form layout: its name (the YAML file's stem), its blank reference image and its fields in reading order."""

    name: str
    reference: Path
    fields: tuple[Field, ...]


def load_templates(folder: Path) -> tuple[Template, ...]:
    """Every NAME.yaml in the folder, by name; raises TemplateError for the first mistake found."""
    if not folder.is_dir():
        raise TemplateError(f"forms.templates: {folder} is not a folder")
    files = sorted(
        path for path in folder.iterdir() if path.suffix == TEMPLATE_SUFFIX and not path.name.startswith(".")
    )
    if not files:
        raise TemplateError(f"forms.templates: no {TEMPLATE_SUFFIX} templates in {folder}")
    return tuple(load_template(path) for path in files)


def load_template(path: Path) -> Template:
    """Read, validate and resolve one template, its reference image included; raises TemplateError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: cannot read template: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader that also refuses duplicate keys
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: expected a mapping with reference and fields")
    unknown = sorted(set(map(str, data)) - {"reference", "fields"})
    if unknown:
        raise TemplateError(f"{path}: {unknown[0]}: unknown key")
    reference = data.get("reference")
    if not isinstance(reference, str) or not reference:
        raise TemplateError(f"{path}: reference: expected the reference image's file name")
    reference_path = path.parent / reference
    image = read_reference(reference_path, where=path)
    found = len(features(image).points)
    if found < MIN_REFERENCE_FEATURES:
        raise TemplateError(
            f"{path}: reference: {reference} has too few features to align pages to "
            f"({found}, need {MIN_REFERENCE_FEATURES}): use the printed form, not a plain page"
        )
    height, width = image.shape
    fields = data.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise TemplateError(f"{path}: fields: expected a mapping of field names to fields")
    parsed = tuple(_field(name, spec, where=path, size=(width, height)) for name, spec in fields.items())
    return Template(name=path.stem, reference=reference_path, fields=parsed)


def read_reference(path: Path, *, where: Path) -> np.ndarray:
    """The reference image as 8-bit grey: a PNG, JPEG or TIFF, or the one page of a PDF; raises TemplateError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"{where}: reference: cannot read {path}: {exc.strerror}") from None
    try:
        opened = open_pages(
            data, name=path.name, max_pixels=REFERENCE_MAX_PIXELS, max_pages=2**16, pdf_dpi=REFERENCE_PDF_DPI
        )
    except Unreadable as exc:
        raise TemplateError(f"{where}: reference: {path.name}: {exc}") from None
    if opened.page_count != 1:
        raise TemplateError(f"{where}: reference: {path.name} has several pages; a reference is one page")
    (page,) = opened.pages
    if page.image is None:
        raise TemplateError(f"{where}: reference: {path.name}: {page.error}")
    return grey(page.image)


def reserved_name(name: str) -> bool:
    """Whether a field name is taken by a column of forms/NAME.csv."""
    return name.lower() in PAGE_COLUMNS + TAIL_COLUMNS


def _field(name: Any, spec: Any, *, where: Path, size: tuple[int, int]) -> Field:
    if not isinstance(name, str) or not name.strip():
        raise TemplateError(f"{where}: fields: a field name must be text, got {name!r}")
    key = f"fields.{name}"
    if reserved_name(name):
        raise TemplateError(f"{where}: {key}: the name is taken by a forms CSV column; choose another")
    if not isinstance(spec, dict):
        raise TemplateError(f"{where}: {key}: expected a mapping with box and kind")
    unknown = sorted(set(map(str, spec)) - set(FIELD_KEYS))
    if unknown:
        raise TemplateError(f"{where}: {key}.{unknown[0]}: unknown key")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise TemplateError(f"{where}: {key}.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    box = _box(spec.get("box"), key=f"{key}.box", where=where, size=size)
    cells = spec.get("cells")
    if kind == "comb" and cells is None:
        raise TemplateError(f"{where}: {key}.cells: a comb needs its count of cells")
    if kind != "comb" and cells is not None:
        raise TemplateError(f"{where}: {key}.cells: only a comb has cells")
    if cells is not None and (not _whole(cells) or cells < 1):
        raise TemplateError(f"{where}: {key}.cells: expected a whole number above 0, got {cells!r}")
    digits = _pair(spec.get("digits"), key=f"{key}.digits", where=where, single=True)
    if digits is not None and digits[0] < 1:
        raise TemplateError(f"{where}: {key}.digits: a field holds at least 1 digit")
    value_range = _pair(spec.get("range"), key=f"{key}.range", where=where, single=False)
    check = spec.get("check")
    if check is not None and check not in CHECKS:
        raise TemplateError(f"{where}: {key}.check: must be {', '.join(CHECKS)}, got {check!r}")
    return Field(
        name=name,
        box=box,
        kind=cast(Kind, kind),
        cells=cells or 1,
        digits=digits,
        range=value_range,
        check=check,
    )


def _box(value: Any, *, key: str, where: Path, size: tuple[int, int]) -> tuple[int, int, int, int]:
    if not isinstance(value, list) or len(value) != 4 or not all(map(_whole, value)):
        raise TemplateError(f"{where}: {key}: expected [x, y, width, height] in whole pixels, got {value!r}")
    x, y, w, h = value
    width, height = size
    if w <= 0 or h <= 0:
        raise TemplateError(f"{where}: {key}: width and height must be above 0, got {value!r}")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise TemplateError(f"{where}: {key}: {value!r} reaches outside the reference ({width}x{height} px)")
    return x, y, w, h


def _pair(value: Any, *, key: str, where: Path, single: bool) -> tuple[int, int] | None:
    """An inclusive [min, max] of whole numbers (or, where `single`, one number N meaning [N, N])."""
    if value is None:
        return None
    if single and _whole(value):
        return value, value
    if not isinstance(value, list) or len(value) != 2 or not all(map(_whole, value)):
        expected = "N or [min, max]" if single else "[min, max]"
        raise TemplateError(f"{where}: {key}: expected {expected} in whole numbers, got {value!r}")
    low, high = value
    if low > high or low < 0:
        raise TemplateError(f"{where}: {key}: expected 0 <= min <= max, got {value!r}")
    return low, high


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1})" if mark else ""
    if isinstance(exc, _DuplicateKey):
        return f"{exc.key}: given twice{where}"
    return f"not valid YAML{where}"


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, mark: yaml.Mark) -> None:
        super().__init__(key)
        self.key, self.problem_mark = key, mark


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load refusing a key given twice in one mapping (PyYAML would keep the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(str(key), key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
