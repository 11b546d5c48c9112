"""Public-dataset layouts end to end: synthetic clips rendered into DoTA's frame folders and DADA-2000's avi files
with their annotation files, imported, prepared and evaluated with the tiny model; metrics broken down by label
quality and source category."""

import json
import subprocess
import sys

import decord
from PIL import Image

from ghostprobe.files import read_jsonl
from ghostprobe.synth import generate
from ghostprobe.video import write_video
from helpers import REPO_ROOT

# The real sheet's header, in its order (../shared/datasets/mm_au/dada_text_annotations.xlsx).
DADA_HEADER = [
    "video",
    "weather(sunny,rainy,snowy,foggy)1-4",
    "light(day,night)1-2",
    "scenes(highway,tunnel,mountain,urban,rural)1-5",
    "linear(arterials,curve,intersection,T-junction,ramp) 1-5",
    "type",
    "whether an accident occurred (1/0)",
    "abnormal start frame",
    "accident frame",
    "abnormal end frame",
    "total frames",
    "[0,tai]",
    "[tai,tco]",
    "[tai,tae]",
    "[tco,tae]",
    "[tae,end]",
    "texts",
    "causes",
    "measures",
]


def script(name, *args, timeout=600):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / name), *args], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (name, result.stdout[-2000:], result.stderr[-3000:])
    return result.stdout


def frames_of(path):
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def import_prepare_evaluate(tmp_path, dataset, annotations, root, tiny_checkpoint, *eval_args):
    labels = tmp_path / f"{dataset}_labels.json"
    summary = script(
        "data_prep/import_labels.py",
        f"dataset={dataset}",
        f"annotations={annotations}",
        f"root={root}",
        f"out={labels}",
    )
    script(
        "data_prep/main.py",
        f"labels={labels}",
        f"videos_dir={root}",
        f"out_dir={tmp_path / 'prepared'}",
        "prep.frame_size=64",
    )
    out = tmp_path / "eval"
    script(
        "eval/run.py",
        "wandb.mode=disabled",
        "model=tiny",
        f"model.path={tiny_checkpoint}",
        f"data.path={tmp_path / 'prepared'}",
        f"output_dir={out}",
        "metrics.bootstrap_resamples=20",
        *eval_args,
    )
    return summary, json.loads((out / "metrics.json").read_text()), read_jsonl([out / "predictions.jsonl"])


def test_a_dota_like_frame_folder_set_is_imported_prepared_and_evaluated(tmp_path, tiny_checkpoint):
    clips = generate(out_dir=tmp_path / "synth", num_clips=14, seed=5, width=160, height=96, fps=10, duration_s=3.0)
    root = tmp_path / "dota"
    metadata = {"train": {}, "val": {}}
    for k, clip in enumerate(clips):
        clip_id = f"src{k:02d}_{100 * k:06d}"  # DoTA's <source video>_<start frame>
        frames = frames_of(tmp_path / "synth" / clip.video)
        (root / "frames" / clip_id / "images").mkdir(parents=True)
        for index, frame in enumerate(frames):  # 0-based jpg, as DoTA's 000000.jpg
            Image.fromarray(frame).save(root / "frames" / clip_id / "images" / f"{index:06d}.jpg", quality=90)
        ghost = clip.label == "ghost_probing"
        start = round(clip.event.t_first_visible_s * 10) if ghost else 5
        subset = "val" if k % 2 else "train"
        metadata[subset][clip_id] = {
            "video_start": 100 * k,
            "video_end": 100 * k + len(frames) - 1,
            "anomaly_start": start,
            "anomaly_end": len(frames),
            "anomaly_class": "ego: pedestrian" if ghost else "other: turning",
            "num_frames": len(frames),
            "subset": subset,
        }
    for subset, clips_meta in metadata.items():
        (root / f"metadata_{subset}.json").write_text(json.dumps(clips_meta))

    summary, metrics, rows = import_prepare_evaluate(
        tmp_path, "dota", root, root, tiny_checkpoint, "data.split=val", "data.val_split=train"
    )
    assert "imported 14 clips (weak 14); 0 rows unreadable; 0 videos missing under root" in summary
    by_group = metrics["classification"]["by_group"]
    assert set(by_group["label_quality"]) == {"weak"}
    assert set(by_group["source_dataset"]) == {"dota"}
    val = [r for r in rows if r["split"] == "val"]
    assert len(val) == 7 == metrics["data"]["num_samples"]
    categories = {r["source_category"] for r in val}
    assert categories <= {"dota / ego: pedestrian", "dota / other: turning"} and len(categories) == 2
    assert set(by_group["source_category"]) == categories
    assert all(r["label_quality"] == "weak" and r["source_dataset"] == "dota" for r in val)


def test_a_dada_like_avi_set_is_imported_prepared_and_evaluated(tmp_path, tiny_checkpoint):
    import openpyxl

    clips = generate(out_dir=tmp_path / "synth", num_clips=16, seed=6, width=160, height=96, fps=30, duration_s=3.0)
    root = tmp_path / "dada"
    root.mkdir()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append(DADA_HEADER)
    for k, clip in enumerate(clips):
        frames = frames_of(tmp_path / "synth" / clip.video)
        ghost, normal = clip.label == "ghost_probing", clip.label == "normal"
        category, video = (1, f"{k + 1:03d}") if ghost else (11, f"{k + 1:03d}")
        write_video(root / f"images_{category}_{video}.avi", frames, 30, codec="mpeg4")
        if ghost:  # frame numbers from 1 at 30 fps
            start, accident = round(clip.event.t_first_visible_s * 30) + 1, round(clip.event.t_event_s * 30) + 1
        else:
            start, accident = 10, -1 if normal else 40
        row = [
            video,
            1,
            1,
            4,
            1,
            category,
            0 if normal else 1,
            start,
            accident,
            min(len(frames), max(accident, start) + 10),
            len(frames),
        ]
        sheet.append(
            row
            + [
                "=H2",
                "=I2-H2",
                "=J2-H2",
                "=J2-I2",
                "=K2-J2",
                "[CLS]a pedestrian crosses the road[SEP]",
                "The ego-car's view is hidden by parked cars",
                "slow down",
            ]
        )
    book.save(root / "dada_text_annotations.xlsx")

    summary, metrics, rows = import_prepare_evaluate(
        tmp_path, "dada2000", root / "dada_text_annotations.xlsx", root, tiny_checkpoint
    )
    assert "imported 16 clips (weak 16); 0 rows unreadable; 0 videos missing under root" in summary
    by_group = metrics["classification"]["by_group"]
    assert set(by_group["label_quality"]) == {"weak"} and set(by_group["source_dataset"]) == {"dada2000"}
    test = [r for r in rows if r["split"] == "test"]
    assert set(by_group["source_category"]) == {r["source_category"] for r in test}
    assert {r["source_category"] for r in rows} == {
        "dada2000 / 1 ego-car hits a crossing pedestrian",
        "dada2000 / 11 ego-car hits a car",
    }
    positives = [r for r in rows if r["source_category"].startswith("dada2000 / 1 ")]
    assert positives and all(r["is_ghost_probing"] for r in positives)
