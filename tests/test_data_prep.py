"""The data-prep stage end to end: real videos made on the spot, every kind of bad input, exactness, resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import decord
import numpy as np
import pytest
from datasets import load_from_disk

from data_prep.prepare import prepare_dataset
from ghostprobe.config import prep_settings
from ghostprobe.frames import encode_jpeg, frames_from_row, resize_frames
from ghostprobe.sampling import uniform_indices
from ghostprobe.video import probe_video, read_frames
from helpers import REPO_ROOT, write_label_file


def clip(clip_id, video, label="normal", **extra):
    entry = {"clip_id": clip_id, "video": video, "label": label, **extra}
    if label == "ghost_probing" and "event" not in extra:
        entry["event"] = {"t_first_visible_s": 2.0, "t_event_s": 3.0, "actor": "pedestrian"}
    return entry


def test_every_bad_input_is_rejected_by_name_and_the_rest_survive(tmp_path, make_video):
    good = [clip(f"good{i}", f"videos/good{i}.mp4", "ghost_probing" if i % 2 else "normal") for i in range(6)]
    for i in range(6):
        make_video(f"videos/good{i}.mp4", seed=i)
    whole = make_video("videos/whole.mp4").read_bytes()
    (tmp_path / "videos/empty.mp4").write_bytes(b"")
    (tmp_path / "videos/truncated.mp4").write_bytes(whole[: len(whole) * 6 // 10])
    rng = np.random.default_rng(0)
    (tmp_path / "videos/corrupt.mp4").write_bytes(rng.integers(0, 255, 4096, dtype=np.uint8).tobytes() + whole[4096:])
    (tmp_path / "videos/notes.mp4").write_text("this is a text file, not a video\n" * 20)
    (tmp_path / "videos/codec.mp4").write_bytes(whole.replace(b"avc1", b"zzzz"))  # a codec nobody decodes
    avi = make_video("videos/cut.avi", num_frames=60, fps=30, codec="mpeg4").read_bytes()
    (tmp_path / "videos/cut.avi").write_bytes(avi[: len(avi) // 2])
    make_video("videos/short.mp4", num_frames=5)
    bad = {
        "missing": (clip("missing", "videos/nope.mp4"), "video file not found"),
        "empty": (clip("empty", "videos/empty.mp4"), "empty file (0 bytes)"),
        "truncated": (clip("truncated", "videos/truncated.mp4"), "truncated or corrupt"),
        "corrupt": (clip("corrupt", "videos/corrupt.mp4"), "cannot decode"),
        "notvideo": (clip("notvideo", "videos/notes.mp4"), "not a video file"),
        "codec": (clip("codec", "videos/codec.mp4"), "unsupported codec"),
        "cut_avi": (clip("cut_avi", "videos/cut.avi"), "truncated: the container declares 60 frames"),
        "late": (
            clip("late", "videos/good0.mp4", "ghost_probing", event={"t_first_visible_s": 2.0, "t_event_s": 9.5}),
            "event.t_event_s=9.5 s is beyond",
        ),
        "inverted": (
            clip("inverted", "videos/good0.mp4", "ghost_probing", event={"t_first_visible_s": 3.0, "t_event_s": 2.0}),
            "inverted",
        ),
        "escape": (clip("escape", "../outside.mp4"), "escapes the videos folder"),
    }
    # A clip shorter than the 8 frames asked is kept with all its frames, as the original does, and a warning.
    entries = (
        good
        + [entry for entry, _ in bad.values()]
        + [clip("good0", "videos/good1.mp4"), clip("short", "videos/short.mp4")]
    )
    (tmp_path / "outside.mp4").write_bytes(whole)
    report = prepare_dataset(write_label_file(tmp_path / "labels.json", entries), tmp_path / "out", prep_settings())

    reasons = {r["clip_id"]: r["reason"] for r in report["rejected"] if r["clip_id"] != "good0"}
    assert set(reasons) == set(bad)
    for clip_id, (_, words) in bad.items():
        assert words in reasons[clip_id], (clip_id, reasons[clip_id])
    duplicate = [r for r in report["rejected"] if r["clip_id"] == "good0"]
    assert len(duplicate) == 1 and "duplicate clip_id" in duplicate[0]["reason"]
    assert report["num_prepared"] == 7
    on_disk = json.loads((tmp_path / "out/prep_report.json").read_text())
    assert on_disk["num_rejected"] == len(bad) + 1
    assert "clip 'short': 5 frames, fewer than the 8 asked: all of them are used" in " ".join(on_disk["warnings"])
    dataset = load_from_disk(str(tmp_path / "out"))
    rows = {c: (split, k) for split in dataset for k, c in enumerate(dataset[split]["clip_id"])}
    assert sorted(rows) == [f"good{i}" for i in range(6)] + ["short"]
    split, k = rows["short"]
    assert dataset[split][k]["frame_indices"] == [0, 1, 2, 3, 4]


def test_playlists_and_lists_of_other_files_are_refused_by_name(tmp_path, make_video):
    # A playlist inside the videos folder that lists a video outside it must not bring that video into the dataset.
    secret = make_video("elsewhere/secret.ts", num_frames=30, seed=9)  # MPEG-TS, the usual HLS segment
    make_video("data/videos/good.mp4")
    playlists = {
        "absolute": f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{secret}\n#EXT-X-ENDLIST\n",
        "relative": "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n../../elsewhere/secret.ts\n#EXT-X-ENDLIST\n",
        "url": f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile://{secret}\n#EXT-X-ENDLIST\n",
    }
    entries = [clip("good", "videos/good.mp4", split="test")]
    for name, text in playlists.items():
        (tmp_path / f"data/videos/{name}.m3u8").write_text(text)
        entries.append(clip(name, f"videos/{name}.m3u8", split="test"))
    # The content decides, not the name: a playlist called .mp4, and an FFmpeg concat list.
    (tmp_path / "data/videos/disguised.mp4").write_text(playlists["absolute"])
    (tmp_path / "data/videos/list.mp4").write_text("ffconcat version 1.0\nfile 'good.mp4'\nfile 'good.mp4'\n")
    entries += [clip("disguised", "videos/disguised.mp4", split="test"), clip("list", "videos/list.mp4", split="test")]
    report = prepare_dataset(
        write_label_file(tmp_path / "data/labels.json", entries), tmp_path / "out", prep_settings()
    )

    reasons = {r["clip_id"]: r["reason"] for r in report["rejected"]}
    assert set(reasons) == {"absolute", "relative", "url", "disguised", "list"}
    for clip_id in ("absolute", "relative", "url", "disguised"):
        assert "a playlist (#EXTM3U), not a plain video file" in reasons[clip_id], reasons[clip_id]
    assert "a concat list (ffconcat), not a plain video file" in reasons["list"]
    assert load_from_disk(str(tmp_path / "out"))["test"]["clip_id"] == ["good"]


def test_an_audio_only_file_is_reported_as_having_no_video_stream(tmp_path, make_video):
    import av

    make_video("videos/good.mp4")
    audio = tmp_path / "videos/audio.mp4"
    with av.open(str(audio), "w") as container:  # one second of silence, AAC in mp4: a dashcam's sound track alone
        stream = container.add_stream("aac", rate=16000)
        for k in range(16):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    labels = write_label_file(
        tmp_path / "labels.json", [clip("good", "videos/good.mp4"), clip("audio", "videos/audio.mp4")]
    )
    report = prepare_dataset(labels, tmp_path / "out", prep_settings())
    (rejected,) = report["rejected"]
    assert rejected["clip_id"] == "audio"
    assert rejected["reason"] == f"{audio}: no video stream (the file holds only audio)"


def test_frames_equal_a_direct_decode_and_metadata_comes_from_the_file(tmp_path, make_video):
    make_video("videos/a.mp4", num_frames=90, seed=3)
    labels = write_label_file(tmp_path / "labels.json", [clip("a", "videos/a.mp4", split="test")])
    prepare_dataset(labels, tmp_path / "out", prep_settings())
    row = load_from_disk(str(tmp_path / "out"))["test"].with_format("numpy")[0]

    path = tmp_path / "videos/a.mp4"
    info = probe_video(path)
    indices = uniform_indices(90, 8)
    # The original Video-LLaMA's load_video: decord resizes while decoding.
    original = decord.VideoReader(str(path), height=224, width=224).get_batch(indices).asnumpy()
    np.testing.assert_array_equal(frames_from_row(row["frames"]), original)
    assert list(row["frame_indices"]) == indices
    np.testing.assert_allclose(row["timestamps_s"], np.array(indices) / 15, atol=1e-6)
    assert (row["video_fps"], row["video_num_frames"], row["video_width"], row["video_height"]) == (15, 90, 320, 180)
    assert row["video_codec"] == "h264" and row["decode_backend"] == "decord"

    # prep.resize=straight: a full-size decode squeezed with PIL bicubic afterwards.
    prepare_dataset(labels, tmp_path / "straight", prep_settings(resize="straight"))
    row = load_from_disk(str(tmp_path / "straight"))["test"].with_format("numpy")[0]
    np.testing.assert_array_equal(
        frames_from_row(row["frames"]), resize_frames(read_frames(path, indices, info), 224, "straight")
    )


def test_real_world_formats_mpeg4_avi_and_h264_mp4(tmp_path, make_video):
    make_video("videos/dashcam.avi", num_frames=60, fps=30, width=1584, height=660, codec="mpeg4")
    make_video("videos/phone.mp4", num_frames=50, fps=25, width=1280, height=720)
    labels = write_label_file(
        tmp_path / "labels.json",
        [
            clip(
                "avi",
                "videos/dashcam.avi",
                "ghost_probing",
                split="test",
                event={"t_first_visible_s": 0.8, "t_event_s": 1.2},
            ),
            clip("mp4", "videos/phone.mp4", split="test"),
        ],
    )
    report = prepare_dataset(labels, tmp_path / "out", prep_settings(resize="pad", storage="jpeg"))
    assert report["rejected"] == []
    rows = {r["clip_id"]: r for r in load_from_disk(str(tmp_path / "out"))["test"]}
    avi = rows["avi"]
    assert (avi["video_codec"], avi["video_width"], avi["video_height"], avi["video_fps"]) == ("mpeg4", 1584, 660, 30)
    frames = frames_from_row(avi["frames"])
    assert frames.shape == (8, 224, 224, 3)
    # keep-aspect: 1584x660 -> 224x93 centred, black bars above and below
    assert frames[:, :60].max() == 0 and frames[:, 170:].max() == 0 and frames[:, 100:120].mean() > 20
    assert rows["mp4"]["video_codec"] == "h264"


def test_splits_are_deterministic_stratified_and_keep_groups_together(tmp_path, make_video):
    entries = []
    for i in range(60):  # two clips per group, from the group's video
        make_video(f"videos/g{i // 2}.mp4", num_frames=50, width=32, height=32, seed=i // 2)
        label = "ghost_probing" if i % 3 == 0 else "normal"
        entries.append(clip(f"c{i:02d}", f"videos/g{i // 2}.mp4", label, group=f"g{i // 2}"))
    make_video("videos/other.mp4", num_frames=50, width=32, height=32, seed=99)
    entries += [
        clip("fixed_train", "videos/g0.mp4", split="train", group="g0"),
        clip("fixed_val", "videos/other.mp4", split="val"),
    ]
    labels = write_label_file(tmp_path / "labels.json", entries)
    first = prepare_dataset(labels, tmp_path / "a", prep_settings())
    second = prepare_dataset(labels, tmp_path / "b", prep_settings(num_proc=2))
    assert first["dataset_fingerprint"] == second["dataset_fingerprint"]
    datasets = [load_from_disk(str(tmp_path / d)) for d in "ab"]
    assert {s: ds["clip_id"] for s, ds in datasets[0].items()} == {s: ds["clip_id"] for s, ds in datasets[1].items()}

    split_of = {c: s for s, ds in datasets[0].items() for c in ds["clip_id"]}
    assert split_of["fixed_val"] == "val"
    group_splits = {}
    for entry in entries:
        group_splits.setdefault(entry.get("group"), set()).add(split_of[entry["clip_id"]])
    assert all(len(splits) == 1 for group, splits in group_splits.items() if group is not None)
    assert group_splits["g0"] == {"train"}  # the group follows its fixed member
    for label, total in (("ghost_probing", 20), ("normal", 42)):
        train = first["splits"]["train"]["labels"][label]
        assert abs(train / total - 0.7) < 0.1, (label, train, total)
        assert first["splits"]["test"]["labels"][label] >= 2
    assert first["warnings"] == []  # clips sharing a video and a group: nothing to warn about


def test_one_video_under_several_clip_ids_stays_in_one_split(tmp_path, make_video):
    def video(name, seed):
        make_video(f"videos/{name}", num_frames=50, width=32, height=32, seed=seed)
        return f"videos/{name}"

    entries = [clip(f"own{i}", video(f"own{i}.mp4", i), "ghost_probing" if i % 2 else "normal") for i in range(6)]
    shared = [clip(f"same{i}", video("shared.mp4", 50)) for i in range(7)]
    shutil.copy(tmp_path / "videos/shared.mp4", tmp_path / "videos/shared_copy.mp4")  # the same bytes, renamed
    shared.append(clip("same7", "videos/shared_copy.mp4", group="another_route"))
    # A clip of a video with a fixed split takes the others along; two fixed splits for one video cannot be honoured.
    pinned = [
        clip("pin0", video("pinned.mp4", 60), split="val"),
        clip("pin1", "videos/pinned.mp4"),
        clip("pin2", "videos/pinned.mp4"),
    ]
    fixed = [
        clip("fixed_a", video("fixed.mp4", 70), split="train"),
        clip("fixed_b", "videos/fixed.mp4", split="test"),
        clip("fixed_c", "videos/fixed.mp4"),
    ]
    labels = write_label_file(tmp_path / "labels.json", entries + shared + pinned + fixed)
    report = prepare_dataset(labels, tmp_path / "out", prep_settings())

    dataset = load_from_disk(str(tmp_path / "out"))
    split_of = {c: s for s, ds in dataset.items() for c in ds["clip_id"]}
    assert len({split_of[entry["clip_id"]] for entry in shared}) == 1
    assert {split_of[entry["clip_id"]] for entry in pinned} == {"val"}
    assert (
        "video videos/shared.mp4 (same bytes as videos/shared_copy.mp4) is used by 8 clips (same0, same1, same2, "
        "same3, same4, ...): they are kept in one split"
    ) in " ".join(report["warnings"])
    reasons = {r["clip_id"]: r["reason"] for r in report["rejected"]}
    assert set(reasons) == {"fixed_a", "fixed_b", "fixed_c"}
    assert reasons["fixed_c"] == (
        "video videos/fixed.mp4 is used by clips in several fixed splits: fixed_a (train), "
        "fixed_b (test), fixed_c (no split); one video cannot be in two splits: give these "
        "clips the same split, or none"
    )


def test_windows_policies_make_one_row_per_window(tmp_path, make_video):
    make_video("videos/long.mp4", num_frames=150)
    labels = write_label_file(
        tmp_path / "labels.json",
        [
            clip(
                "pos",
                "videos/long.mp4",
                "ghost_probing",
                split="test",
                event={"t_first_visible_s": 5.0, "t_event_s": 6.0},
            )
        ],
    )
    prepare_dataset(labels, tmp_path / "out", prep_settings(sampling="sliding"))
    rows = load_from_disk(str(tmp_path / "out"))["test"]
    assert rows["sample_id"][:2] == ["pos#w0", "pos#w1"] and len(rows) == 9  # windows ending 2.0 .. 6.0 s
    assert max(max(ts) for ts in rows["timestamps_s"]) < 6.0


def run_prep(labels, out, *extra):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "data_prep/main.py"), f"labels={labels}", f"out_dir={out}", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_zero_shot_split_puts_every_clip_in_test_and_small_test_splits_are_warned_about(tmp_path, make_video):
    make_video("videos/a.mp4", num_frames=60, width=32, height=32)
    make_video("videos/b.mp4", num_frames=60, width=32, height=32, seed=1)
    entries = [
        clip(f"c{i:02d}", f"videos/{'ab'[i % 2]}.mp4", "ghost_probing" if i % 3 == 0 else "normal", group=f"g{i}")
        for i in range(12)
    ]
    entries[0]["split"] = entries[2]["split"] = "train"  # fixed splits in the label file: zero-shot scores them too
    labels = write_label_file(tmp_path / "labels.json", entries)
    zero_shot = run_prep(labels, tmp_path / "zs", "split=zero_shot")  # the documented command-line form
    assert zero_shot.returncode == 0, zero_shot.stderr
    dataset = load_from_disk(str(tmp_path / "zs"))
    assert list(dataset) == ["test"] and sorted(dataset["test"]["clip_id"]) == [e["clip_id"] for e in entries]
    report = json.loads((tmp_path / "zs/prep_report.json").read_text())
    assert report["split_policy"] == "zero_shot"
    assert "2 clips had a fixed split in the label file (train 2); this split policy ignores it" in report["warnings"]
    warning = (
        "SMALL TEST SPLIT: test holds 12 clips (prep.min_test_clips=50) and 4 ghost probing and 8 other clips "
        "(prep.min_test_clips_per_class=10)"
    )
    assert report["test_split_warning"].startswith(warning) and f"WARNING: {warning}" in zero_shot.stdout
    quiet = prepare_dataset(
        labels, tmp_path / "quiet", prep_settings(split="zero_shot", min_test_clips=10, min_test_clips_per_class=4)
    )
    assert quiet["test_split_warning"] is None
    fixed = prepare_dataset(labels, tmp_path / "random", prep_settings())  # the default split honours fixed ones
    assert "c00" in load_from_disk(str(tmp_path / "random"))["train"]["clip_id"]
    assert "split=zero_shot" in fixed["test_split_warning"]


def test_exit_code_follows_rejected_share(tmp_path, make_video):
    make_video("videos/ok.mp4")
    entries = [clip(f"ok{i}", "videos/ok.mp4") for i in range(9)] + [clip("gone", "videos/gone.mp4")]
    labels = write_label_file(tmp_path / "labels.json", entries)
    within = run_prep(labels, tmp_path / "o1", "max_rejected_fraction=0.1")
    assert within.returncode == 0, within.stderr
    assert "prepared 9 of 10 clips" in within.stdout and "gone: " in within.stdout
    over = run_prep(labels, tmp_path / "o2", "max_rejected_fraction=0.05")
    assert over.returncode == 1 and "rejected share 10.0% exceeds" in over.stderr
    assert (tmp_path / "o2/dataset_dict.json").exists()  # nothing lost: the dataset is still written

    wrong_dir = run_prep(labels, tmp_path / "o4", f"videos_dir={tmp_path / 'no_such_folder'}")
    assert wrong_dir.returncode == 1 and wrong_dir.stderr.count("does not exist") == 1
    assert f"data_prep: videos_dir {tmp_path / 'no_such_folder'} does not exist" in wrong_dir.stderr

    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1, "clips": [\n  {"clip_id": "x",}\n]}')
    none = run_prep(broken, tmp_path / "o3")
    assert none.returncode == 1 and "no clip survived" in none.stderr
    assert (
        "broken.json line 2 column 19"
        in json.loads((tmp_path / "o3/prep_report.json").read_text())["rejected"][0]["reason"]
    )


def test_resume_after_kill_reuses_clips_and_gives_the_same_fingerprint(tmp_path, make_video):
    entries = []
    for i in range(24):
        make_video(f"videos/v{i}.mp4", num_frames=60, width=640, height=360, seed=i)
        entries.append(clip(f"c{i:02d}", f"videos/v{i}.mp4", "ghost_probing" if i % 2 else "normal"))
    labels = write_label_file(tmp_path / "labels.json", entries)
    cache = tmp_path / "killed/.prep_cache/clips"
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "data_prep/main.py"), f"labels={labels}", f"out_dir={tmp_path / 'killed'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (cache.exists() and len(list(cache.glob("*.frames"))) >= 3):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(cache.glob("*.frames")))
    assert 3 <= done_before < 24, "the run should have been killed part-way"
    assert not (tmp_path / "killed/dataset_dict.json").exists()

    resumed = run_prep(labels, tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((tmp_path / "killed/prep_report.json").read_text())
    assert report["reused_from_cache"] == done_before
    assert run_prep(labels, tmp_path / "clean").returncode == 0
    clean_report = json.loads((tmp_path / "clean/prep_report.json").read_text())
    assert report["dataset_fingerprint"] == clean_report["dataset_fingerprint"]
    a, b = load_from_disk(str(tmp_path / "killed")), load_from_disk(str(tmp_path / "clean"))
    for split in a:
        assert a[split]._fingerprint == b[split]._fingerprint
        for row_a, row_b in zip(a[split], b[split], strict=True):
            np.testing.assert_array_equal(frames_from_row(row_a["frames"]), frames_from_row(row_b["frames"]))


# Data prep in a subprocess that is killed (kill -9, no clean-up) once the first split of the dataset is on disk.
PREP_KILLED_DURING_WRITE = """
import os, signal, sys
import datasets
from data_prep.prepare import prepare_dataset
from ghostprobe.config import prep_settings

write_split = datasets.Dataset.save_to_disk
def write_split_then_die(self, *args, **kwargs):
    write_split(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
datasets.Dataset.save_to_disk = write_split_then_die
prepare_dataset(sys.argv[1], sys.argv[2], prep_settings())
"""


def test_a_kill_during_the_final_write_leaves_the_previous_dataset_whole(tmp_path, make_video):
    for name in "abcdefgh":
        make_video(f"videos/{name}.mp4", num_frames=50, width=32, height=32, seed=ord(name))
    first, second, third = ({"train": x, "val": y, "test": z} for x, y, z in ("abc", "def", "fgh"))

    def labels(splits):
        entries = [clip(clip_id, f"videos/{clip_id}.mp4", split=split) for split, clip_id in splits.items()]
        return write_label_file(tmp_path / "labels.json", entries)

    def killed_run(splits, out):
        run = subprocess.run(
            [sys.executable, "-c", PREP_KILLED_DURING_WRITE, str(labels(splits)), str(out)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == -signal.SIGKILL, run.stderr

    def on_disk(out):
        return {split: list(ds["clip_id"]) for split, ds in load_from_disk(str(out)).items()}

    out = tmp_path / "out"
    killed_run(first, out)  # the very first write: no dataset, rather than one that looks finished but does not load
    assert not (out / "dataset_dict.json").exists()
    prepare_dataset(labels(first), out, prep_settings())
    assert on_disk(out) == {"train": ["a"], "val": ["b"], "test": ["c"]}
    killed_run(second, out)  # a re-run over a good dataset: the good one is still there, whole
    assert on_disk(out) == {"train": ["a"], "val": ["b"], "test": ["c"]}
    prepare_dataset(labels(second), out, prep_settings())
    assert on_disk(out) == {"train": ["d"], "val": ["e"], "test": ["f"]}
    # The killed run's partial copy is gone: one dataset's worth of Arrow files on disk.
    assert sum(name.endswith(".arrow") for _, _, names in os.walk(out) for name in names) == 3

    # A folder that `save_to_disk` wrote in place (as data prep did before) is taken over the same way.
    plain = tmp_path / "plain"
    load_from_disk(str(out)).save_to_disk(str(plain))
    killed_run(third, plain)
    assert on_disk(plain) == {"train": ["d"], "val": ["e"], "test": ["f"]}
    prepare_dataset(labels(third), plain, prep_settings())
    assert on_disk(plain) == {"train": ["f"], "val": ["g"], "test": ["h"]}
    assert sum(name.endswith(".arrow") for _, _, names in os.walk(plain) for name in names) == 3


def test_a_folder_of_other_files_named_like_a_split_is_never_taken_over(tmp_path, make_video):
    make_video("videos/a.mp4")
    labels = write_label_file(tmp_path / "labels.json", [clip("a", "videos/a.mp4", split="train")])
    (tmp_path / "out/train").mkdir(parents=True)
    (tmp_path / "out/train/route12.mp4").write_bytes(b"someone's own video")
    with pytest.raises(
        FileExistsError,
        match=r"out/train: not a dataset split, but data prep writes its 'train' "
        r"split there: move that folder away",
    ):
        prepare_dataset(labels, tmp_path / "out", prep_settings())
    assert (tmp_path / "out/train/route12.mp4").read_bytes() == b"someone's own video"


def test_without_symbolic_links_the_dataset_is_written_in_place_with_a_warning(tmp_path, make_video, monkeypatch):
    make_video("videos/a.mp4")
    labels = write_label_file(tmp_path / "labels.json", [clip("a", "videos/a.mp4", split="test")])

    def no_links(self, target, target_is_directory=False):
        raise OSError(1, "Operation not permitted")  # as on exFAT and some network shares

    monkeypatch.setattr(Path, "symlink_to", no_links)
    report = prepare_dataset(labels, tmp_path / "out", prep_settings())
    assert list(load_from_disk(str(tmp_path / "out"))["test"]["clip_id"]) == ["a"]
    assert (
        f"{tmp_path / 'out'}: this file system has no symbolic links, so the dataset was written in place: a kill "
        "during that write leaves it incomplete"
    ) in " ".join(report["warnings"])


@pytest.mark.parametrize("storage", ["uint8", "jpeg"])
def test_storage_modes_read_back_alike(tmp_path, make_video, storage):
    make_video("videos/a.mp4")
    labels = write_label_file(tmp_path / "labels.json", [clip("a", "videos/a.mp4", split="test")])
    prepare_dataset(labels, tmp_path / storage, prep_settings(storage=storage, frame_size=112))
    frames = frames_from_row(load_from_disk(str(tmp_path / storage))["test"][0]["frames"])
    assert frames.shape == (8, 112, 112, 3) and frames.dtype == np.uint8
    if storage == "jpeg":
        exact = read_frames(
            tmp_path / "videos/a.mp4", uniform_indices(75, 8), probe_video(tmp_path / "videos/a.mp4"), size=112
        )
        # Lossy, but exactly the JPEG round trip of the exact frames at the configured quality.
        round_trip = frames_from_row([{"bytes": b} for b in encode_jpeg(exact, 90)])
        np.testing.assert_array_equal(frames, round_trip)


def test_pyav_takes_over_when_decord_cannot_read(tmp_path, make_video, monkeypatch):
    import ghostprobe.video as video

    make_video("videos/a.avi", num_frames=45, fps=30, width=640, height=360, codec="mpeg4")
    labels = write_label_file(tmp_path / "labels.json", [clip("a", "videos/a.avi", split="test")])

    def decord_fails(*args, **kwargs):
        raise RuntimeError("decord: cannot open this file")

    monkeypatch.setattr(video, "_probe_decord", decord_fails)
    report = prepare_dataset(labels, tmp_path / "out", prep_settings())
    assert report["rejected"] == []
    row = load_from_disk(str(tmp_path / "out"))["test"].with_format("numpy")[0]
    assert row["decode_backend"] == "pyav" and row["video_num_frames"] == 45 and row["video_codec"] == "mpeg4"
    monkeypatch.undo()
    path = tmp_path / "videos/a.avi"
    with_decord = read_frames(path, uniform_indices(45, 8), probe_video(path), size=224)
    # PyAV runs the FFmpeg filters decord's resizing reader runs: the same frames, exactly.
    np.testing.assert_array_equal(frames_from_row(row["frames"]), with_decord)


def write_vfr_video(path, times_s, size=(48, 64)):
    """An H.264 mp4 whose frame i is shown at times_s[i] (millisecond clock), grey level 3 * i."""
    import fractions

    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.height, stream.width = size
        stream.pix_fmt, stream.time_base = "yuv420p", fractions.Fraction(1, 1000)
        for i, t in enumerate(times_s):
            frame = av.VideoFrame.from_ndarray(np.full((*size, 3), 3 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_variable_frame_rate_videos_get_their_presentation_times(tmp_path):
    # 10 fps for 2 s, then 30 fps for 2 s: the frame shown at 1.0 s is frame 10, which index / average fps would
    # stamp 0.5 s.
    times = [k * 0.1 for k in range(20)] + [2.0 + k / 30 for k in range(60)]
    write_vfr_video(tmp_path / "videos/vfr.mp4", times)
    entries = [
        clip("pos", "videos/vfr.mp4", "ghost_probing", split="test", event={"t_first_visible_s": 2.0, "t_event_s": 3.0})
    ]
    labels = write_label_file(tmp_path / "labels.json", entries)
    prepare_dataset(labels, tmp_path / "fps", prep_settings(sampling="fps"))
    row = load_from_disk(str(tmp_path / "fps"))["test"][0]
    # 2 frames a second by presentation time: frames 0, 5, 10, 15, 20, 35, 50, 65
    assert row["frame_indices"] == [0, 5, 10, 15, 20, 35, 50, 65]
    assert row["timestamps_s"] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5], abs=1e-3)

    prepare_dataset(labels, tmp_path / "sliding", prep_settings(sampling="sliding"))
    rows = load_from_disk(str(tmp_path / "sliding"))["test"]
    assert rows["window_end_s"] == [2.0, 2.5, 3.0]
    for stamps, end in zip(rows["timestamps_s"], rows["window_end_s"], strict=True):
        assert max(stamps) < end  # no window shows a frame from after its end, so none sees the event

    # A constant-rate video keeps index / fps, the times the original Video-LLaMA prints.
    prepare_dataset(labels, tmp_path / "uniform", prep_settings())
    assert load_from_disk(str(tmp_path / "uniform"))["test"][0]["frame_indices"] == list(range(0, 80, 10))


def test_an_image_renamed_mp4_is_called_an_image_not_a_playlist(tmp_path, make_video):
    from PIL import Image

    make_video("videos/ok.mp4", num_frames=30, width=32, height=32)
    frame = Image.fromarray(np.zeros((32, 32, 3), np.uint8))
    for name, fmt in (("jpg", "JPEG"), ("png", "PNG"), ("gif", "GIF")):
        frame.save(tmp_path / "videos" / f"{name}.mp4", format=fmt)
    entries = [clip("ok", "videos/ok.mp4")] + [clip(n, f"videos/{n}.mp4") for n in ("jpg", "png", "gif")]
    report = prepare_dataset(write_label_file(tmp_path / "labels.json", entries), tmp_path / "out", prep_settings())
    reasons = {r["clip_id"]: r["reason"] for r in report["rejected"]}
    for name, kind in (("jpg", "a JPEG"), ("png", "a PNG"), ("gif", "a GIF")):
        assert f"videos/{name}.mp4: {kind} image, not a video" in reasons[name] and "playlist" not in reasons[name]
    assert report["num_prepared"] == 1
