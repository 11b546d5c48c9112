"""How prepared frames are stored and read back: a dataset the size of its frames, windows read as uint8 arrays,
long clips decoded chunk by chunk (the same frames, memory that does not grow with the clip), older datasets still
read, damaged cache entries prepared again."""

import dataclasses
import os
import re
import tracemalloc

import numpy as np
import pytest
from datasets import Array4D, Dataset, DatasetDict, Features, Image, Value, load_from_disk

from data_prep.clip_worker import CACHE_SUFFIX, CachedClip, ClipTask, prepare_clip
from data_prep.prepare import _generate_rows, prepare_dataset
from ghostprobe.config import prep_settings
from ghostprobe.frames import encode_jpeg, frames_from_row
from ghostprobe.labels import ClipLabel
from ghostprobe.video import iter_frames, probe_video, read_frames
from helpers import write_label_file
from train.data import PreparedClips

SIZE = 64
FRAME_BYTES = SIZE * SIZE * 3


def one_clip(tmp_path, video, **extra):
    return write_label_file(
        tmp_path / "labels.json", [{"clip_id": "drive", "video": video, "label": "normal", "split": "test", **extra}]
    )


def dataset_file_bytes(out_dir):
    """What the prepared dataset takes on disk, its clip cache left out."""
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, dirs, names in os.walk(out_dir)
        if ".prep_cache" not in root
        for name in names
        if not os.path.islink(os.path.join(root, name))
    )


def test_a_long_sliding_clip_takes_its_frame_bytes_on_disk_and_windows_read_back_as_uint8(tmp_path, make_video):
    video = make_video("videos/drive.mp4", num_frames=450, fps=15)  # 30 s
    labels = one_clip(tmp_path, "videos/drive.mp4")
    prepare_dataset(labels, tmp_path / "out", prep_settings(sampling="sliding", frame_size=SIZE))
    rows = load_from_disk(str(tmp_path / "out"))["test"]
    assert len(rows) == 57  # 2 s windows ending every 0.5 s from 2.0 to 30.0 s
    frames_held = sum(len(indices) for indices in rows["frame_indices"])
    # Array4D stored a 4-byte offset for every pixel: 2.3x the frames' bytes.
    assert dataset_file_bytes(tmp_path / "out") <= 1.2 * frames_held * FRAME_BYTES

    info = probe_video(video)
    for row in (rows[0], rows.with_format("numpy")[56], rows.with_format("torch")[30]):
        frames = frames_from_row(row["frames"])
        assert frames.dtype == np.uint8 and frames.shape == (8, SIZE, SIZE, 3)
        np.testing.assert_array_equal(
            frames, read_frames(video, [int(i) for i in row["frame_indices"]], info, size=SIZE)
        )
    clip = PreparedClips(tmp_path / "out", "test")[5]["clip"]
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (8, SIZE, SIZE, 3) and clip.frames.flags.writeable


def test_a_clip_decoded_chunk_by_chunk_gives_the_frames_of_one_decode(tmp_path, make_video, monkeypatch):
    import av

    video = make_video("videos/a.mp4", num_frames=150)
    info = probe_video(video)
    indices = list(range(0, 150, 3))
    whole = read_frames(video, indices, info, size=SIZE)
    chunks = list(iter_frames(video, indices, info, size=SIZE, chunk_frames=7))
    assert [len(chunk) for chunk in chunks] == [7] * 7 + [1]
    np.testing.assert_array_equal(np.concatenate(chunks), whole)

    # A file only PyAV reads is decoded in one pass, not once per chunk.
    opened = []
    monkeypatch.setattr(av, "open", lambda *args, _open=av.open, **kwargs: opened.append(1) or _open(*args, **kwargs))
    pyav_only = dataclasses.replace(info, backend="pyav")
    np.testing.assert_array_equal(
        np.concatenate(list(iter_frames(video, indices, pyav_only, size=SIZE, chunk_frames=7))), whole
    )
    assert len(opened) == 1


@pytest.mark.parametrize("storage", ["uint8", "jpeg"])
def test_small_decode_chunks_give_the_same_dataset(tmp_path, make_video, storage):
    make_video("videos/drive.mp4", num_frames=150)
    labels = one_clip(tmp_path, "videos/drive.mp4")
    settings = {"sampling": "sliding", "frame_size": SIZE, "storage": storage}
    one = prepare_dataset(labels, tmp_path / "one", prep_settings(**settings))
    small = prepare_dataset(labels, tmp_path / "small", prep_settings(decode_chunk_mb=0.05, **settings))  # 4 frames
    # The fingerprint hashes every stored frame byte.
    assert one["dataset_fingerprint"] == small["dataset_fingerprint"] is not None
    a, b = load_from_disk(str(tmp_path / "one"))["test"], load_from_disk(str(tmp_path / "small"))["test"]
    assert len(a) == len(b) == 17
    frames = frames_from_row(a[16]["frames"])
    assert frames.dtype == np.uint8 and frames.shape == (8, SIZE, SIZE, 3)
    np.testing.assert_array_equal(frames, frames_from_row(b.with_format("numpy")[16]["frames"]))


def test_memory_for_a_clip_does_not_grow_with_its_length(tmp_path, make_video):
    settings = prep_settings(sampling="sliding", frame_size=SIZE, decode_chunk_mb=0.25)  # 20 frames a chunk
    peaks = {}
    for seconds in (20, 20, 80):  # the first run imports the decoders: not counted
        make_video(f"videos/{seconds}.mp4", num_frames=seconds * 10, fps=10, width=160, height=96)
        clip = ClipLabel(clip_id=f"drive{seconds}", video=f"videos/{seconds}.mp4", label="normal")
        cache = tmp_path / f"{seconds}{CACHE_SUFFIX}"
        task = ClipTask(clip.model_dump_json(), str(tmp_path / clip.video), str(cache), settings, str(tmp_path))
        tracemalloc.start()  # counts numpy's arrays and bytes objects, not the decoder's own buffers
        assert prepare_clip(task)["ok"]
        prepare_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        rows = sum(1 for _ in _generate_rows([(clip.model_dump_json(), str(cache))], "uint8"))
        peaks[seconds] = (prepare_peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    with CachedClip(tmp_path / f"80{CACHE_SUFFIX}") as cached:
        decoded_bytes = len(cached.meta["unique_indices"]) * FRAME_BYTES
    assert rows == 157 and decoded_bytes > 3_000_000
    # Decoding the whole clip at once held all its frames (twice); now one chunk of 20 frames.
    assert peaks[80][0] < decoded_bytes / 2 and peaks[80][0] < peaks[20][0] + 500_000
    assert peaks[80][1] < decoded_bytes / 4 and peaks[80][1] < peaks[20][1] + 500_000


def test_a_damaged_cache_entry_is_prepared_again_and_old_entries_are_removed(tmp_path, make_video):
    make_video("videos/a.mp4")
    labels = one_clip(tmp_path, "videos/a.mp4")
    first = prepare_dataset(labels, tmp_path / "out", prep_settings(frame_size=SIZE))
    cache_dir = tmp_path / "out/.prep_cache/clips"
    (entry,) = cache_dir.glob(f"*{CACHE_SUFFIX}")
    entry.write_bytes(entry.read_bytes()[:1000])  # an interrupted copy of the folder
    (cache_dir / "0123abcd.npz").write_bytes(b"a cache entry of data prep before cache format 4")
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(entry))}: not a complete data-prep cache entry .* delete it and re-run"
    ):
        CachedClip(entry)
    again = prepare_dataset(labels, tmp_path / "out", prep_settings(frame_size=SIZE))
    assert again["reused_from_cache"] == 0 and again["dataset_fingerprint"] == first["dataset_fingerprint"]
    assert sorted(p.name for p in cache_dir.iterdir()) == [entry.name]


def test_datasets_prepared_before_with_array4d_or_image_frames_still_read(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    jpeg_files = encode_jpeg(frames, 90)
    for name, feature, value, expected in (
        ("uint8", Array4D(shape=(None, 16, 16, 3), dtype="uint8"), frames, frames),
        ("jpeg", [Image()], [{"bytes": blob, "path": None} for blob in jpeg_files], frames_from_row(jpeg_files)),
    ):
        features = Features(
            {
                "sample_id": Value("string"),
                "frames": feature,
                "timestamps_s": [Value("float64")],
                "is_ghost_probing": Value("bool"),
            }
        )
        old = Dataset.from_dict(
            {
                "sample_id": ["a"],
                "frames": [value],
                "timestamps_s": [[0.5 * k for k in range(8)]],
                "is_ghost_probing": [True],
            },
            features=features,
        )
        DatasetDict(test=old).save_to_disk(str(tmp_path / name))
        np.testing.assert_array_equal(PreparedClips(tmp_path / name, "test")[0]["clip"].frames, expected)
        np.testing.assert_array_equal(
            frames_from_row(load_from_disk(str(tmp_path / name))["test"][0]["frames"]), expected
        )
