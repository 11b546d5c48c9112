"""The labelling loop without a server: label files -> Label Studio tasks, a Label Studio export -> gold labels,
merging label files, and data prep re-using clips a review only turned gold. The round trip through a real Label
Studio server: tests/test_review_label_studio.py."""

import json
from pathlib import Path

import numpy as np

from data_prep.merge_labels import merge_label_files
from data_prep.prepare import prepare_dataset
from data_prep.review import from_label_studio, to_label_studio
from ghostprobe.config import compose, prep_settings
from ghostprobe.labels import load_labels
from ghostprobe.video import probe_video, write_video
from helpers import write_label_file

WEAK_SOURCE = {
    "dataset": "dada2000",
    "original_id": "1/002",
    "category_id": 11,
    "category_name": "ego-car hits a crossing pedestrian",
    "candidate_reason": "category",
}


def review_cfg(command: str, **settings):
    return compose("review", [f"+command={command}", *(f"{k}={v}" for k, v in settings.items())])


def weak_clip(clip_id: str, label: str = "ghost_probing", **fields) -> dict:
    clip = {
        "clip_id": clip_id,
        "video": f"clips/{clip_id}.mp4",
        "label": label,
        "label_quality": "weak",
        "source": WEAK_SOURCE,
        "group": "route1",
    }
    if label == "ghost_probing":
        clip["event"] = {"t_first_visible_s": 2.0, "t_event_s": 3.0, "actor": "child"}
    return clip | fields


def test_to_label_studio_writes_one_task_per_clip(tmp_path, make_video):
    make_video("clips/weak_a.mp4")  # 75 frames at 15 fps
    make_video("clips/alert_a000.mp4", num_frames=45, fps=10)
    make_video("clips/dashcam.avi", num_frames=30, fps=15, codec="mpeg4")
    write_video(tmp_path / "clips/odd.mkv", np.zeros((10, 181, 321, 3), np.uint8), 15, codec="ffv1", pix_fmt="yuv444p")
    labels = write_label_file(
        tmp_path / "labels.json",
        [
            weak_clip("weak_a"),
            {
                "clip_id": "alert_a000",
                "video": "clips/alert_a000.mp4",
                "label": None,
                "group": "drive",
                "notes": "TO LABEL: cut from drive.mp4",
            },  # as the scan's export_alerts writes it
            weak_clip("dashcam", "other_hazard", video="clips/dashcam.avi"),
            weak_clip("odd", "normal", video="clips/odd.mkv"),
            weak_clip("gone", video="clips/gone.mp4"),
            {"clip_id": "bad", "video": "clips/weak_a.mp4", "label": "ghost_probing"},  # no event times
        ],
    )
    out = tmp_path / "tasks.json"
    assert to_label_studio(review_cfg("to_label_studio", labels=labels, out=out))
    tasks = {t["data"]["clip_id"]: t for t in json.loads(out.read_text())}
    assert list(tasks) == ["weak_a", "alert_a000", "dashcam", "odd"]  # the missing video and the bad label are reported

    weak = tasks["weak_a"]
    assert weak["data"]["video"] == "/data/local-files/?d=clips/weak_a.mp4"
    assert weak["data"]["fps"] == 15.0
    assert "dada2000 1/002" in weak["data"]["about"] and "candidate because: category" in weak["data"]["about"]
    result = {(r["from_name"], r["type"]): r["value"] for r in weak["predictions"][0]["result"]}
    assert result[("label", "choices")] == {"choices": ["ghost_probing"]}
    assert result[("actor", "choices")] == {"choices": ["child"]}
    marks = [r["value"] for r in weak["predictions"][0]["result"] if r["type"] == "timelinelabels"]
    # Label Studio numbers frames from 1: 2.0 s at 15 fps is frame 31, 3.0 s frame 46.
    assert marks == [
        {"ranges": [{"start": 31, "end": 31}], "timelinelabels": ["actor visible"]},
        {"ranges": [{"start": 46, "end": 46}], "timelinelabels": ["in path"]},
    ]
    assert weak["data"]["clip"]["source"] == WEAK_SOURCE and weak["data"]["clip"]["label_quality"] == "weak"

    alert = tasks["alert_a000"]
    assert "predictions" not in alert and "label" not in alert["data"]["clip"]
    assert alert["data"]["about"].startswith("not labelled yet")

    # An avi of MPEG-4 Part 2 does not play in a browser: an H.264 preview with the same frames is served.
    preview = tmp_path / "review_previews" / "dashcam.mp4"
    assert tasks["dashcam"]["data"]["video"] == "/data/local-files/?d=review_previews/dashcam.mp4"
    info = probe_video(preview)
    assert (info.codec, info.num_frames, info.fps, info.width, info.height) == ("h264", 30, 15.0, 320, 180)
    assert tasks["dashcam"]["data"]["clip"]["video"] == "clips/dashcam.avi"  # the label keeps the original
    odd = probe_video(tmp_path / "review_previews" / "odd.mp4")  # H.264 4:2:0 needs even sizes: a row and column cut
    assert (odd.codec, odd.num_frames, odd.width, odd.height) == ("h264", 10, 320, 180)
    assert "<TimelineLabels" in out.with_suffix(".xml").read_text()


def test_videos_label_studio_cannot_serve_are_reported(tmp_path, make_video, capsys):
    make_video("clips/weak_a.mp4")
    make_video("flat.mp4")
    labels = write_label_file(tmp_path / "labels.json", [weak_clip("weak_a"), weak_clip("flat", video="flat.mp4")])
    to_label_studio(review_cfg("to_label_studio", labels=labels, out=tmp_path / "tasks.json"))
    assert [t["data"]["clip_id"] for t in json.loads((tmp_path / "tasks.json").read_text())] == ["weak_a"]
    assert "clip 'flat', field video: " in capsys.readouterr().out  # Label Studio serves subfolders only
    (tmp_path / "elsewhere").mkdir()
    ok = to_label_studio(
        review_cfg("to_label_studio", labels=labels, out=tmp_path / "tasks.json", document_root=tmp_path / "elsewhere")
    )
    assert not ok
    assert "clip 'weak_a', field video: " in capsys.readouterr().out


def write_run(run_dir: Path, p_by_sample: dict[str, tuple[str, float | None]], threshold: float) -> Path:
    """An eval output directory as eval/run.py leaves it: metrics.json and predictions.jsonl."""
    run_dir.mkdir()
    identity = {"model": "tiny", "prompt": "p1"}
    (run_dir / "metrics.json").write_text(
        json.dumps({**identity, "data": {"fingerprint": "f", "split": "test"}, "threshold": {"value": threshold}})
    )
    rows = [
        {
            **identity,
            "data_fingerprint": "f",
            "split": "test",
            "sample_id": sample,
            "clip_id": clip,
            "p_ghost_probing": p,
        }
        for sample, (clip, p) in p_by_sample.items()
    ]
    rows.append(
        {
            "model": "other",
            "prompt": "p1",
            "data_fingerprint": "f",
            "split": "test",
            "sample_id": "d",
            "clip_id": "d",
            "p_ghost_probing": 0.4,
        }
    )  # another model's row: not this run's
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def test_order_uncertainty_puts_the_least_sure_clips_first(tmp_path, make_video):
    make_video("clips/v.mp4", num_frames=15)
    labels = write_label_file(
        tmp_path / "labels.json", [{"clip_id": c, "video": "clips/v.mp4", "label": "normal"} for c in "abcde"]
    )
    run = write_run(
        tmp_path / "run",
        {"a": ("a", 0.9), "b": ("b", 0.45), "c#w0": ("c", 0.1), "c#w1": ("c", 0.38), "e": ("e", None)},
        threshold=0.4,
    )
    out = tmp_path / "tasks.json"
    to_label_studio(review_cfg("to_label_studio", labels=labels, out=out, order="uncertainty", run_dir=run))
    # |p - 0.4|: c 0.02 (its nearer window), b 0.05, a 0.5; d and e have no score and keep their order.
    assert [t["data"]["clip_id"] for t in json.loads(out.read_text())] == ["c", "b", "a", "d", "e"]
    to_label_studio(review_cfg("to_label_studio", labels=labels, out=out))
    assert [t["data"]["clip_id"] for t in json.loads(out.read_text())] == list("abcde")


def answer(reviewer: str, label: str | None, marks=(), cancelled=False, **choices) -> dict:
    """An annotation as Label Studio exports it."""
    result = (
        []
        if label is None
        else [{"from_name": "label", "to_name": "video", "type": "choices", "value": {"choices": [label]}}]
    )
    result += [
        {
            "from_name": "marks",
            "to_name": "video",
            "type": "timelinelabels",
            "value": {"ranges": [{"start": start, "end": end}], "timelinelabels": [mark]},
        }
        for mark, start, end in marks
    ]
    result += [
        {"from_name": k, "to_name": "video", "type": "choices", "value": {"choices": [v]}} for k, v in choices.items()
    ]
    return {
        "completed_by": {"id": hash(reviewer) % 100, "email": reviewer},
        "result": result,
        "was_cancelled": cancelled,
        "created_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-01T10:05:00Z",
    }


def test_from_label_studio_gives_gold_labels_and_lists_the_rest(tmp_path, make_video, capsys):
    for clip_id in ("p", "n", "split", "skip", "open", "nomarks"):
        make_video(f"clips/{clip_id}.mp4", num_frames=75, fps=15)
    labels = write_label_file(
        tmp_path / "labels.json", [weak_clip(c) for c in ("p", "n", "split", "skip", "open", "nomarks")]
    )
    tasks_file = tmp_path / "tasks.json"
    to_label_studio(review_cfg("to_label_studio", labels=labels, out=tasks_file))
    tasks = json.loads(tasks_file.read_text())
    answers = {
        "p": [
            answer(
                "ana@example.com",
                "ghost_probing",
                [("actor visible", 31, 31), ("in path", 46, 61)],
                actor="cyclist",
                side="right",
            )
        ],
        "n": [answer("ana@example.com", "normal"), answer("ben@example.com", "normal")],
        "split": [
            answer("ana@example.com", "ghost_probing", [("actor visible", 31, 31), ("in path", 46, 46)]),
            answer("ben@example.com", "other_hazard"),
        ],
        "skip": [answer("ben@example.com", None, cancelled=True)],
        "open": [],
        "nomarks": [answer("ben@example.com", "ghost_probing")],
    }
    export = [{**task, "id": k + 1, "annotations": answers[task["data"]["clip_id"]]} for k, task in enumerate(tasks)]
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(export))
    out = tmp_path / "gold.json"

    assert not from_label_studio(review_cfg("from_label_studio", export=export_file, out=out))  # one rejected
    printed = capsys.readouterr().out
    gold = {clip.clip_id: clip for clip in load_labels(out).clips}
    assert sorted(gold) == ["n", "p"]
    p = gold["p"]
    assert p.quality == "gold" and p.label == "ghost_probing" and p.video == "clips/p.mp4"
    # frames from 1 at 15 fps: 31 -> 2.0 s, 46 -> 3.0 s, 61 -> 4.0 s
    assert (p.event.t_first_visible_s, p.event.t_event_s, p.event.t_end_s) == (2.0, 3.0, 4.0)
    assert (p.event.actor, p.event.side) == ("cyclist", "right")
    assert p.source.dataset == "dada2000" and p.source.candidate_reason == "category"  # provenance kept
    assert (p.source.reviewer, p.source.reviewed_at, p.source.tool) == (
        "ana@example.com",
        "2026-12-01T10:05:00Z",
        "label_studio",
    )
    assert gold["n"].source.reviewer == "ana@example.com, ben@example.com" and gold["n"].event is None
    assert gold["n"].group == "route1"
    assert "agreement: 1 of 2 tasks with several reviewers gave the same label (50.0%)" in printed
    assert (
        "task 3 (clip split): reviewers disagree (ana@example.com: ghost_probing, ben@example.com: "
        "other_hazard)" in printed
    )
    assert "task 4 (clip skip): skipped by ben@example.com" in printed
    assert "task 5 (clip open): not reviewed yet" in printed
    assert (
        f"{export_file}, clip 'nomarks', field event: required for label 'ghost_probing' but missing (task 6 "
        "(clip nomarks), reviewed by ben@example.com)"
    ) in printed


def test_unlabelled_clips_are_read_only_when_asked(tmp_path):
    labels = write_label_file(
        tmp_path / "exported.json",
        [
            {"clip_id": "a", "video": "clips/a.mp4", "label": None},
            {"clip_id": "b", "video": "clips/b.mp4", "label": None, "context": {"light": "noon"}},
        ],
    )
    assert [p.field for p in load_labels(labels).problems] == ["label", "label"]  # data prep rejects them
    to_label = load_labels(labels, to_label=True)
    assert [(c.clip_id, c.label) for c in to_label.clips] == [("a", None)]
    assert [(p.clip_id, p.field) for p in to_label.problems] == [("b", "context.light")]


def test_merge_gold_beats_weak_and_lists_disagreements(tmp_path):
    weak = write_label_file(
        tmp_path / "imported.json",
        [
            weak_clip("a"),
            weak_clip("b", "normal"),
            weak_clip("c", "other_hazard"),
            weak_clip("d", "normal", video="clips/d.mp4"),
        ],
    )
    (tmp_path / "review").mkdir()
    gold = write_label_file(
        tmp_path / "review" / "gold.json",
        [
            {"clip_id": "a", "video": "../clips/a.mp4", "label": "normal", "label_quality": "gold"},
            {"clip_id": "b", "video": "../clips/b.mp4", "label": "normal"},  # no label_quality: gold
            {"clip_id": "d", "video": "../clips/other_d.mp4", "label": "normal"},
        ],
    )
    second = write_label_file(
        tmp_path / "review" / "second.json",
        [{"clip_id": "b", "video": "../clips/b.mp4", "label": "cut_in", "label_quality": "gold"}],
    )
    merge = merge_label_files([weak, gold, second], tmp_path)
    merged = {clip.clip_id: clip for clip in merge.clips}
    assert sorted(merged) == ["a", "c"]
    assert (merged["a"].label, merged["a"].quality, merged["a"].video) == ("normal", "gold", "clips/a.mp4")
    assert (merged["c"].label, merged["c"].quality) == ("other_hazard", "weak")
    assert merge.weak_replaced == 1
    assert merge.left_out[0].startswith("clip 'b': gold labels disagree: normal (") and "cut_in (" in merge.left_out[0]
    assert merge.left_out[1].startswith("clip 'd': one clip_id names different videos")


def test_merge_writes_video_paths_for_its_own_folder(tmp_path):
    (tmp_path / "a").mkdir()
    labels = write_label_file(tmp_path / "a" / "labels.json", [weak_clip("x")])
    assert merge_label_files([labels], tmp_path).clips[0].video == "a/clips/x.mp4"
    (tmp_path / "b").mkdir()
    merge = merge_label_files([labels], tmp_path / "b")
    assert merge.clips == [] and "outside the merged file's folder" in merge.problems[0].message


def test_data_prep_reuses_clips_a_review_only_turned_gold(tmp_path, make_video):
    for clip_id in ("g", "n", "moved"):
        make_video(f"clips/{clip_id}.mp4", num_frames=45, fps=15)
    settings = prep_settings(frame_size=32)
    weak = write_label_file(tmp_path / "weak.json", [weak_clip("g"), weak_clip("n", "normal"), weak_clip("moved")])
    first = prepare_dataset(weak, tmp_path / "prepared", settings)
    assert first["num_prepared"] == 3 and first["reused_from_cache"] == 0
    reviewed = {"reviewer": "ana@example.com", "reviewed_at": "2026-12-01T10:05:00Z", "tool": "label_studio"}
    gold = write_label_file(
        tmp_path / "gold.json",
        [
            weak_clip("g", label_quality="gold", source=WEAK_SOURCE | reviewed, notes="confirmed"),
            weak_clip("n", "normal", label_quality="gold", source=WEAK_SOURCE | reviewed),
            weak_clip("moved", label_quality="gold", event={"t_first_visible_s": 1.0, "t_event_s": 1.5}),
        ],
    )
    merged = merge_label_files([weak, gold], tmp_path)
    write_path = tmp_path / "merged.json"
    from ghostprobe.labels import write_labels

    write_labels(write_path, merged.clips)
    second = prepare_dataset(write_path, tmp_path / "prepared", settings)
    # Only the clip whose event times the reviewer moved is decoded again.
    assert second["num_prepared"] == 3 and second["reused_from_cache"] == 2
    assert second["dataset_fingerprint"] != first["dataset_fingerprint"]  # the rows' notes and times changed
