"""Importers: public dashcam datasets' annotations (and a user's own spreadsheet) -> the project's label file.

`python data_prep/import_labels.py dataset=NAME annotations=PATH root=DIR out=LABELS.json`; each dataset's frame
rate, layout and category -> label mapping is in conf/importer/NAME.yaml (docs/labels.md, "Public datasets"). The
datasets label accident categories, never occlusion: their labels are `weak` ghost-probing candidates and hard
negatives, with the provenance that says where each came from.
"""

from __future__ import annotations

from pathlib import Path

from ghostprobe.files import write_json_atomic
from ghostprobe.importers.a3d import read_a3d
from ghostprobe.importers.ccd import read_ccd
from ghostprobe.importers.common import AnnotationFileError, ImporterConfigError, ImportResult, finish
from ghostprobe.importers.dad import read_dad
from ghostprobe.importers.dota import read_dota
from ghostprobe.importers.mmau import read_mmau
from ghostprobe.importers.nexar import read_nexar
from ghostprobe.importers.user_csv import read_user_csv
from ghostprobe.labels import SCHEMA_VERSION

# The `reader:` of an importer's YAML -> the function that reads its annotation files.
READERS = {
    "mmau": read_mmau,
    "dota": read_dota,
    "ccd": read_ccd,
    "a3d": read_a3d,
    "nexar": read_nexar,
    "dad": read_dad,
    "csv": read_user_csv,
}

__all__ = ["READERS", "AnnotationFileError", "ImporterConfigError", "ImportResult", "import_labels", "write_import"]


def import_labels(
    dataset: str, cfg: dict, annotations: str | Path, root: str | Path, keep_missing: bool = False
) -> ImportResult:
    """Read `annotations` with the importer `cfg` (conf/importer/NAME.yaml, resolved to a dict) into labels whose
    `video` paths are relative to `root`. Raises AnnotationFileError / ImporterConfigError when nothing can be read;
    a bad row or a missing video never stops the others."""
    reader = READERS.get(cfg.get("reader"))
    if reader is None:
        raise ImporterConfigError(
            f"importer {dataset}: reader {cfg.get('reader')!r} is not one of {', '.join(READERS)}"
        )
    root = Path(root)
    result = finish(reader(Path(annotations), root, {**cfg, "dataset": dataset}), root, keep_missing)
    if not root.is_dir():
        result.warnings.append(
            f"root={root} is not a folder: every video is missing"
            + ("" if keep_missing else " (keep_missing=true keeps the clips to plan with)")
        )
    return result


def write_import(result: ImportResult, out: str | Path) -> tuple[Path, Path]:
    """Write the label file and, beside it, `<name>.import_report.json` (every missing video and unreadable row),
    each to a temporary name renamed into place; returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = out.with_name(out.stem + ".import_report.json")
    doc = {"schema_version": SCHEMA_VERSION, "clips": [clip.to_json() for clip in result.clips]}
    for path, content in ((out, doc), (report, result.to_json())):
        write_json_atomic(path, content)
    return out, report
