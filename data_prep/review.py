"""The labelling loop: hand clips to reviewers in Label Studio, and take their answers back as gold labels.

    python data_prep/review.py to_label_studio labels=L.json out=TASKS.json [url=URL token=TOKEN project=TITLE]
    python data_prep/review.py from_label_studio (export=EXPORT.json | url=URL [token=TOKEN]) [project=TITLE] out=L.json

Settings and their defaults: conf/review.yaml; the walk-through: docs/labels.md, "Labelling your clips".
to_label_studio exits 1 when no clip became a task; from_label_studio exits 1 when an answer was rejected by the label
schema (the label file is still written with the others).
"""

import json
import sys
from pathlib import Path

# A stage script runs as `python data_prep/review.py`: put the repository root on the path for `ghostprobe`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig, OmegaConf

from ghostprobe.cli import entry_point
from ghostprobe.files import write_json_atomic, write_text_atomic
from ghostprobe.label_studio import LabelStudio, LabelStudioError
from ghostprobe.labels import LabelFileError, load_labels, write_labels
from ghostprobe.review import (
    PREDICTIONS_VERSION,
    gold_labels,
    label_config,
    make_tasks,
    served_folders,
    uncertainty_order,
)

COMMANDS = ("to_label_studio", "from_label_studio")


@entry_point("review")
def main(cfg: DictConfig) -> None:
    try:
        ok = to_label_studio(cfg) if cfg.command == "to_label_studio" else from_label_studio(cfg)
    except (LabelStudioError, LabelFileError, FileNotFoundError) as err:
        raise SystemExit(f"review: {err}") from None
    if not ok:
        sys.exit(1)


def to_label_studio(cfg: DictConfig) -> bool:
    """Tasks for every clip of `labels` (unlabelled ones too), written to `out` and/or imported at `url`."""
    if cfg.labels is None or (cfg.out is None and cfg.url is None):
        raise SystemExit("review: to_label_studio needs labels=FILE and out=TASKS.json (or url=)")
    label_set = load_labels(cfg.labels, to_label=True)
    for problem in label_set.problems:
        print(f"  not reviewable: {problem}")
    clips = label_set.clips
    if cfg.order == "uncertainty":
        if cfg.run_dir is None:
            raise SystemExit("review: order=uncertainty needs run_dir=EVAL_OUTPUT_DIR (a finished eval run)")
        clips, distance = uncertainty_order(clips, cfg.run_dir)
        print(f"order: {len(distance)} of {len(clips)} clips scored by {cfg.run_dir}, least sure first")
    elif cfg.order != "given":
        raise SystemExit(f"review: order={cfg.order} is not one of: given, uncertainty")
    videos_root = Path(cfg.videos_dir or Path(cfg.labels).parent)
    document_root = Path(cfg.document_root or videos_root)
    previews_dir = Path(cfg.previews_dir or document_root / "review_previews")
    batch = make_tasks(clips, str(cfg.labels), videos_root, document_root, previews_dir, cfg.decode_threads)
    for problem in batch.problems:
        print(f"  not reviewable: {problem}")
    interface = label_config(OmegaConf.to_container(cfg.words))
    print(
        f"{len(batch.tasks)} tasks from {len(label_set.clips) + len(label_set.problems)} clips of {cfg.labels} "
        f"({sum('predictions' in t for t in batch.tasks)} with a label to confirm, {batch.previews} previews "
        f"encoded); videos served from {document_root.resolve()}"
    )
    if cfg.out is not None:
        out = Path(cfg.out)
        write_json_atomic(out, batch.tasks, indent=1)
        write_text_atomic(out.with_suffix(".xml"), interface)
        print(f"wrote {out} and its labelling interface {out.with_suffix('.xml')}")
    if cfg.url is not None and batch.tasks:
        _import(cfg, batch, interface, document_root)
    return bool(batch.tasks)


def _import(cfg: DictConfig, batch, interface: str, document_root: Path) -> None:
    studio = LabelStudio(cfg.url, cfg.token)
    settings = {
        "label_config": interface,
        "maximum_annotations": int(cfg.reviewers_per_task),
        "show_skip_button": True,
        "show_collab_predictions": True,
        "model_version": PREDICTIONS_VERSION,
        "sampling": "Sequential sampling",
        "description": "Ghost probing review: see docs/labels.md, 'Labelling your clips'",
    }
    project, created = studio.create_or_update_project(str(cfg.project), settings)
    for folder in served_folders(batch, document_root):
        studio.ensure_local_storage(project["id"], str(folder), f"ghostprobe clips: {folder.name}")
    existing = {t["data"].get("clip_id"): t for t in studio.export_tasks(project["id"])}
    new = [task for task in batch.tasks if task["data"]["clip_id"] not in existing]
    changed = [
        (existing[t["data"]["clip_id"]]["id"], t["data"])
        for t in batch.tasks
        if t["data"]["clip_id"] in existing and existing[t["data"]["clip_id"]]["data"] != t["data"]
    ]
    added = studio.import_tasks(project["id"], new) if new else 0
    for task_id, data in changed:
        studio.update_task_data(task_id, data)
    print(
        f"{'created' if created else 'updated'} project {project['title']!r} (id {project['id']}) at "
        f"{cfg.url}: {added} tasks added, {len(changed)} updated, "
        f"{len(batch.tasks) - len(new) - len(changed)} already there"
    )


def from_label_studio(cfg: DictConfig) -> bool:
    """The project's answers as a label file of gold clips at `out`; what gave no gold clip is listed."""
    if cfg.out is None or (cfg.export is None and cfg.url is None):
        raise SystemExit("review: from_label_studio needs out=LABELS.json and export=EXPORT.json (or url=)")
    out = Path(cfg.out)
    if cfg.export is not None:
        source, users = str(cfg.export), None
        tasks = json.loads(Path(cfg.export).read_text(encoding="utf-8"))
    else:
        studio = LabelStudio(cfg.url, cfg.token)
        project = studio.project(cfg.project)
        source = f"{studio.url}/projects/{project['id']}"
        tasks, users = studio.export_tasks(project["id"]), studio.user_emails()
    document_root = Path(cfg.document_root or out.parent)
    outcome = gold_labels(tasks, source, out.parent, document_root, users)
    write_labels(out, outcome.clips)
    print(f"{len(outcome.clips)} gold clips of {len(tasks)} tasks -> {out}")
    if outcome.agreement is not None:
        print(
            f"agreement: {outcome.agreed} of {outcome.multi_reviewed} tasks with several reviewers gave the same "
            f"label ({outcome.agreement:.1%})"
        )
    for title, entries in (
        ("rejected by the label schema", [str(p) for p in outcome.problems]),
        ("reviewers disagree", outcome.disagreements),
        ("skipped", outcome.skipped),
        ("unresolved", outcome.unresolved),
    ):
        if entries:
            print(f"  {title} ({len(entries)}):")
            print("\n".join(f"    {entry}" for entry in entries))
    return not outcome.problems


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(
            f"usage: python data_prep/review.py {{{'|'.join(COMMANDS)}}} key=value ... (see conf/review.yaml)"
        )
    sys.argv[1] = f"+command={sys.argv[1]}"
    main()
