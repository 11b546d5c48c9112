"""MM-AU's two spreadsheets: DADA-2000 (`dada_text_annotations.xlsx`, openpyxl) and CAP-DATA
(`cap_text_annotations.xls`, xlrd).

Both hold one row per clip with the same columns in different orders, so every column is found by its header text
(`columns:` in the YAML), never by position. A clip is keyed by (type, video) in DADA-2000, where video ids repeat
across accident types. Frame numbers start at 1, as the image files (0001.png) do.
"""

from __future__ import annotations

import re
from pathlib import Path

from ghostprobe.importers.common import (
    ActorMap,
    AnnotationFileError,
    Candidate,
    CategoryMap,
    ImporterConfigError,
    RowProblem,
    cause_match,
    context_words,
    event_times,
    fill,
    ghost_probing_reason,
)


def read_mmau(annotations: Path, root: Path, cfg: dict):
    """Yield a Candidate or a RowProblem per row of the annotation sheet."""
    header, rows = read_sheet(annotations, cfg["sheet"])
    column = find_columns(annotations, cfg["sheet"], header, cfg["columns"])
    names = {int(k): v for k, v in (cfg.get("category_names") or {}).items()}
    names.update(category_names(Path(cfg.get("category_names_file") or annotations), cfg.get("category_names_sheet")))
    categories, actors = CategoryMap(cfg), ActorMap(cfg)
    for row_number, values in rows:
        where = f"{annotations.name} sheet {cfg['sheet']!r} row {row_number}"
        field = {name: values[index] if index < len(values) else None for name, index in column.items()}
        if all(v in (None, "") for v in field.values()):
            continue  # a blank line at the end of the sheet
        try:
            yield _candidate(field, where, cfg, names, categories, actors)
        except _BadCell as err:
            yield RowProblem(where, str(err))


class _BadCell(ValueError):
    pass


def _candidate(field: dict, where: str, cfg: dict, names: dict, categories: CategoryMap, actors: ActorMap) -> Candidate:
    video = _video_id(field["video"], cfg["video_digits"])
    category_id = _integer(field, "type")
    accident = _integer(field, "accident") == 1
    frames = {name: _frame(field, name) for name in ("abnormal_start", "accident_frame", "abnormal_end")}
    total = _integer(field, "total_frames")
    name = names.get(category_id)
    category = f"{category_id} {name}" if name else str(category_id)
    cause = _text(field.get("cause"))
    if accident:
        category_label = categories.label(category_id)
        if category_label is None:
            raise _BadCell(
                f"category {category} is not mapped: list it under `categories:` in the importer's YAML, "
                "or set default_label"
            )
        pattern = cause_match(cause, cfg)
        label = "ghost_probing" if pattern else category_label
    else:  # the row says no accident happened; the YAML says what that is
        category_label, pattern, label = None, None, cfg["non_accident_label"]
        category += " (no accident)"
    fields = {"type": category_id, "video": video}
    event = None
    if label != "normal":
        event, clamped = event_times(frames, cfg, total)
        if clamped:
            raise _BadCell(f"frames beyond the clip's {total} total frames: {'; '.join(clamped)}")
        actor = actors.actor(category_id)
        event = event | ({"actor": actor} if actor else {})
    return Candidate(
        clip_id=fill(cfg["clip_id"], fields),
        videos=[fill(p, fields) for p in cfg["videos"]],
        label=label,
        where=where,
        category=category,
        event=event,
        fps=cfg["fps"],
        context=context_words({k: field.get(k) for k in ("weather", "light", "scene")}, cfg),
        notes=_description(field.get("text")),
        source={
            "dataset": cfg["dataset"],
            "original_id": fill(cfg["original_id"], fields),
            "category_id": category_id,
            "category_name": name,
            "cause": cause,
            "candidate_reason": (ghost_probing_reason(category_label, pattern) if label == "ghost_probing" else None),
        },
    )


def _video_id(value, digits: int) -> str:
    """Video ids are zero-padded text ("001"); a copy that stored them as numbers (1.0) is padded back."""
    if isinstance(value, (int, float)) and float(value).is_integer():
        return f"{int(value):0{digits}d}"
    text = _text(value)
    if not text:
        raise _BadCell("video id is empty")
    return text.zfill(digits) if text.isdigit() else text


def _integer(field: dict, name: str) -> int:
    value = field[name]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    text = _text(value)
    if text and re.fullmatch(r"-?\d+", text):
        return int(text)
    raise _BadCell(f"{name} {value!r} is not a whole number")


def _frame(field: dict, name: str) -> int | None:
    """A frame number; -1 (as in the accident frame of a row without an accident) means none."""
    value = _integer(field, name)
    return None if value < 0 else value


def _text(value) -> str | None:
    if value is None:
        return None
    # The sheets use non-breaking spaces between words (copied from a web page): read them as spaces.
    text = " ".join(str(value).replace("\xa0", " ").split())
    return text or None


def _description(value) -> str | None:
    """The `texts` column without its tokenizer markers: "[CLS]a pedestrian crosses the road[SEP]" -> the words."""
    text = _text(value)
    return _text(text.replace("[CLS]", " ").replace("[SEP]", " ")) if text else None


# --- spreadsheets ---------------------------------------------------------------------------------------------------


def read_sheet(path: Path, sheet: str) -> tuple[list[str], list[tuple[int, list]]]:
    """(header texts, [(row number as the spreadsheet shows it, cell values)]) of one sheet of an .xlsx or .xls."""
    if not path.is_file():
        raise AnnotationFileError(f"{path}: annotation file not found")
    rows = list(_sheet_rows(path, sheet))
    if not rows:
        raise AnnotationFileError(f"{path}: sheet {sheet!r} is empty")
    header = [_text(v) or "" for v in rows[0]]
    return header, [(number, values) for number, values in enumerate(rows[1:], start=2)]


def _sheet_rows(path: Path, sheet: str):
    suffix = path.suffix.lower()
    if suffix == ".xls":
        import xlrd

        try:
            book = xlrd.open_workbook(str(path), on_demand=True)
        except xlrd.XLRDError as err:
            raise AnnotationFileError(f"{path}: not a readable .xls workbook ({err})") from None
        if sheet not in book.sheet_names():
            raise AnnotationFileError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(book.sheet_names())})")
        table = book.sheet_by_name(sheet)
        for r in range(table.nrows):
            yield [_xls_value(cell) for cell in table.row(r)]
        return
    if suffix not in (".xlsx", ".xlsm"):
        raise AnnotationFileError(f"{path}: expected an .xlsx or .xls spreadsheet")
    import openpyxl

    try:
        book = openpyxl.load_workbook(str(path), read_only=True, data_only=False)
    except Exception as err:  # noqa: BLE001  (openpyxl raises zipfile, KeyError, InvalidFileException...)
        raise AnnotationFileError(f"{path}: not a readable .xlsx workbook ({type(err).__name__}: {err})") from None
    try:
        if sheet not in book.sheetnames:
            raise AnnotationFileError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(book.sheetnames)})")
        yield from (list(row) for row in book[sheet].iter_rows(values_only=True))
    finally:
        book.close()


def _xls_value(cell):
    import xlrd

    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return None
    return cell.value


def find_columns(path: Path, sheet: str, header: list[str], wanted: dict) -> dict[str, int]:
    """field -> column index, each found by its header text: the header, spaces squeezed and case ignored, starts
    with the YAML's text ("weather" finds "weather(sunny,rainy,snowy,foggy)1-4"). Exactly one column must match."""
    normal = [" ".join(h.lower().split()) for h in header]
    found, errors = {}, []
    for field_name, text in wanted.items():
        key = " ".join(str(text).lower().split())
        matches = [k for k, h in enumerate(normal) if h.startswith(key)]
        if len(matches) == 1:
            found[field_name] = matches[0]
        elif not matches:
            errors.append(f"no column headed {text!r} (for {field_name})")
        else:
            errors.append(
                f"{len(matches)} columns headed {text!r} (for {field_name}): {', '.join(header[k] for k in matches)}"
            )
    if errors:
        raise AnnotationFileError(
            f"{path} sheet {sheet!r}: {'; '.join(errors)}. Headers found: "
            f"{', '.join(repr(h) for h in header if h)}; set the header texts under "
            "`columns:` in the importer's YAML"
        )
    return found


def category_names(path: Path, sheet: str | None) -> dict[int, str]:
    """Category id -> name from a sheet listing them, one per row as "001 ego-car hits a crossing pedestrian" in one
    cell or as an id cell and a name cell. No sheet (or a file without it): none."""
    if not sheet or not path.is_file():
        return {}
    try:
        rows = list(_sheet_rows(path, sheet))
    except AnnotationFileError:
        return {}
    names = {}
    for values in rows:
        cells = [_text(v) if not isinstance(v, float) else str(int(v)) if v.is_integer() else str(v) for v in values]
        line = " ".join(c for c in cells if c)
        match = re.match(r"^(\d{1,3})[\s.:)-]+(\D.*)$", line)
        if match:
            names[int(match[1])] = match[2].strip()
    if not names:
        raise ImporterConfigError(
            f"{path} sheet {sheet!r}: no category names found (expected rows like "
            "'001 ego-car hits a crossing pedestrian')"
        )
    return names
