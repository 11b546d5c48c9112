"""Public datasets' annotations (or your own spreadsheet) -> the project's label file.

    python data_prep/import_labels.py dataset=NAME annotations=PATH root=DIR out=LABELS.json [keep_missing=true]

NAME is one of conf/importer/ (dada2000, cap, dota, ccd, a3d, nexar, dad, csv); docs/labels.md ("Public datasets")
says what each reads and maps to. Prints per category how many clips became which label, the videos missing under
root and the rows it could not read (all of them in <out name>.import_report.json). Exit code 1 when no clip was
imported or the annotation file cannot be read.
"""

import sys
from pathlib import Path

# A stage script runs as `python data_prep/import_labels.py`: put the repository root on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig, OmegaConf

from ghostprobe.cli import entry_point
from ghostprobe.importers import (
    AnnotationFileError,
    ImporterConfigError,
    import_labels,
    write_import,
)


@entry_point("import_labels")
def main(cfg: DictConfig) -> None:
    importer = OmegaConf.to_container(cfg.importer, resolve=True)
    try:
        result = import_labels(cfg.dataset.name, importer, cfg.annotations, cfg.root, cfg.keep_missing)
    except (AnnotationFileError, ImporterConfigError) as err:
        print(f"import_labels: {err}", file=sys.stderr)
        sys.exit(1)
    out, report = write_import(result, cfg.out)
    print(result.summary(cfg.show))
    print(f"wrote {out} ({len(result.clips)} clips) and {report}")
    if not result.clips:
        print("import_labels: FAILED: no clip imported", file=sys.stderr)
        sys.exit(1)
    print(f"next: python data_prep/main.py labels={out} videos_dir={cfg.root} out_dir=PREPARED_DIR")


if __name__ == "__main__":
    main()
