"""Clips stored as folders of numbered images: same frames as the same images in a lossless video, bad folders
named, path checks, one listing per clip."""

import numpy as np
import pytest
from datasets import load_from_disk
from PIL import Image

import ghostprobe.frame_folder as frame_folder
from data_prep.prepare import prepare_dataset
from ghostprobe.config import prep_settings
from ghostprobe.frames import frames_from_row
from ghostprobe.video import VideoReadError, probe_video, read_frames, write_video
from helpers import moving_pattern, write_label_file


def write_frames(folder, frames, first=1, digits=4, ext="png"):
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{first + k:0{digits}d}.{ext}")
    return folder


def folder_clip(clip_id, video, fps=10.0, label="normal", **extra):
    return {"clip_id": clip_id, "video": video, "label": label, "fps": fps, **extra}


@pytest.mark.parametrize("layout", ["images_subfolder_1_based", "flat_0_based"])
def test_a_png_folder_gives_the_arrays_of_the_same_frames_as_a_lossless_video(tmp_path, layout):
    frames = moving_pattern(12, 180, 320, seed=1)
    if layout == "images_subfolder_1_based":  # DADA-2000: <type>/<video>/images/0001.png
        write_frames(tmp_path / "clip/images", frames, first=1, digits=4)
    else:  # DoTA without images/: <clip>/000000.png
        write_frames(tmp_path / "clip", frames, first=0, digits=6)
    video = write_video(tmp_path / "clip.mkv", frames, 10, codec="ffv1", pix_fmt="bgr0")  # lossless RGB
    folder_info = probe_video(tmp_path / "clip", fps=10.0)
    video_info = probe_video(video)
    assert (folder_info.num_frames, folder_info.width, folder_info.height) == (12, 320, 180)
    assert folder_info.duration_s == video_info.duration_s == 1.2
    indices = [0, 3, 4, 7, 11, 3]
    at_224 = read_frames(tmp_path / "clip", indices, folder_info, size=224)
    assert np.array_equal(at_224, read_frames(video, indices, video_info, size=224))  # decord, FFmpeg's scale
    assert np.array_equal(read_frames(tmp_path / "clip", indices, folder_info), frames[indices])  # PNG is lossless


def test_a_jpg_folder_is_prepared_like_a_video_with_the_labels_fps(tmp_path):
    frames = moving_pattern(40, 72, 128, seed=2)
    write_frames(tmp_path / "videos/dota_clip/images", frames, first=0, digits=6, ext="jpg")
    labels = write_label_file(
        tmp_path / "labels.json",
        [
            folder_clip(
                "dota_clip",
                "videos/dota_clip",
                fps=10.0,
                label="ghost_probing",
                split="test",
                event={"t_first_visible_s": 2.0, "t_event_s": 2.0},
            )
        ],
    )
    report = prepare_dataset(labels, tmp_path / "out", prep_settings(frame_size=64))
    assert report["num_rejected"] == 0, report["rejected"]
    (row,) = load_from_disk(str(tmp_path / "out"))["test"]
    assert (row["video_fps"], row["video_num_frames"], row["video_duration_s"]) == (10.0, 40, 4.0)
    assert (row["decode_backend"], row["video_codec"]) == ("image2", "mjpeg")
    assert row["frame_indices"] == [0, 5, 10, 15, 20, 25, 30, 35]
    assert row["timestamps_s"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    info = probe_video(tmp_path / "videos/dota_clip", fps=10.0)
    assert np.array_equal(
        frames_from_row(row["frames"]), read_frames(tmp_path / "videos/dota_clip", row["frame_indices"], info, size=64)
    )


def test_every_bad_frame_folder_is_rejected_by_name_and_the_good_one_survives(tmp_path):
    frames = moving_pattern(6, 36, 64)
    videos = tmp_path / "data/videos"
    write_frames(videos / "good/images", frames)
    write_frames(videos / "gap", frames)
    (videos / "gap/0004.png").unlink()
    write_frames(videos / "stray", frames)
    (videos / "stray/notes.txt").write_text("frames exported on Tuesday")
    write_frames(videos / "sizes", frames)
    Image.fromarray(frames[0][:30, :50]).save(videos / "sizes/0004.png")
    (videos / "empty/images").mkdir(parents=True)
    write_frames(videos / "mixed", frames)
    Image.fromarray(frames[0]).save(videos / "mixed/0003.jpg")
    (videos / "mixed/0003.png").unlink()
    write_frames(videos / "padding", frames, digits=1)
    (videos / "padding/6.png").rename(videos / "padding/0006.png")
    write_frames(videos / "liar", frames, ext="jpg")
    Image.fromarray(frames[0]).save(videos / "liar/0002.jpg", format="PNG")  # a PNG named .jpg
    write_frames(videos / "no_fps", frames)
    write_frames(tmp_path / "elsewhere/secret", frames)
    write_frames(videos / "linked", frames[:2])
    (videos / "linked/0003.png").symlink_to(tmp_path / "elsewhere/secret/0001.png")
    (videos / "linked_folder").symlink_to(tmp_path / "elsewhere/secret", target_is_directory=True)
    (videos / "linked_images").mkdir()
    (videos / "linked_images/images").symlink_to(tmp_path / "elsewhere/secret", target_is_directory=True)
    bad = {
        "gap": ("the numbering has gaps: 0004.png missing between 0001.png and 0006.png", {}),
        "stray": ("not a numbered image (jpg/png): notes.txt", {}),
        "sizes": ("mixed frame sizes or pixel modes: 5 frames are 64x36 RGB, but 50x30 RGB: 0004.png", {}),
        "empty": ("empty frame folder (no jpg or png images)", {}),
        "mixed": ("mixed image types: 5 images have '.png', these not: 0003.jpg", {}),
        "padding": ("mixed zero padding", {}),
        "liar": ("0002.jpg holds a PNG image, not the JPEG its name says", {}),
        "no_fps": ("a folder of frames has no frame rate of its own: give the clip's `fps`", {"fps": None}),
        # each link named with its target (ghostprobe/links.py)
        "linked": (
            f"image links to files outside the videos folder {tmp_path / 'data'}: 0003.png -> "
            f"{tmp_path / 'elsewhere/secret/0001.png'}",
            {},
        ),
        "linked_folder": (
            f"{videos / 'linked_folder'} is a link to {tmp_path / 'elsewhere/secret'}, outside the videos folder",
            {},
        ),
        "linked_images": (
            f"{videos / 'linked_images/images'} is a link to {tmp_path / 'elsewhere/secret'}, outside "
            "the videos folder",
            {},
        ),
        "missing": ("frame folder (or video file) not found", {}),
    }
    entries = [folder_clip("good", "videos/good")]
    for name, (_, extra) in bad.items():
        entries.append({k: v for k, v in {**folder_clip(name, f"videos/{name}"), **extra}.items() if v is not None})
    report = prepare_dataset(
        write_label_file(tmp_path / "data/labels.json", entries), tmp_path / "out", prep_settings(frame_size=32)
    )
    reasons = {r["clip_id"]: r["reason"] for r in report["rejected"]}
    assert set(reasons) == set(bad)
    for name, (words, _) in bad.items():
        assert words in reasons[name], (name, reasons[name])
    assert reasons["gap"].startswith(str(videos / "gap"))
    assert report["num_prepared"] == 1


def test_a_long_folder_is_listed_once_however_many_windows_are_cut_from_it(tmp_path, monkeypatch):
    write_frames(tmp_path / "videos/long", moving_pattern(120, 36, 64), first=0, digits=6, ext="jpg")
    calls = []
    real = frame_folder.list_frame_folder

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(frame_folder, "list_frame_folder", counting)
    labels = write_label_file(tmp_path / "labels.json", [folder_clip("long", "videos/long", split="test")])
    report = prepare_dataset(labels, tmp_path / "out", prep_settings(frame_size=32, sampling="sliding"))
    assert report["num_rejected"] == 0, report["rejected"]
    assert report["splits"]["test"]["samples"] == 21  # 2 s windows ending every 0.5 s over 12 s
    assert len(calls) == 1


def test_a_folder_named_in_a_playlist_form_is_read_as_images_only(tmp_path):
    # The demuxer is forced to image2: a playlist saved as a frame is a broken JPEG, never a list of other files.
    frames = moving_pattern(3, 36, 64)
    write_frames(tmp_path / "clip", frames, ext="jpg")
    (tmp_path / "clip/0002.jpg").write_text(f"#EXTM3U\n#EXTINF:2.0,\n{tmp_path / 'elsewhere.ts'}\n")
    with pytest.raises(VideoReadError, match=r"0002.jpg is not a readable image"):
        probe_video(tmp_path / "clip", fps=10.0)
