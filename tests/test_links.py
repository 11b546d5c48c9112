"""One rule for symbolic links in data prep and the scan (ghostprobe/links.py): a link is followed when its target is
inside the folder the video is named in or an `allowed_roots=` folder, and refused otherwise naming the link and its
target."""

import json

import pytest

from data_prep.prepare import prepare_dataset
from ghostprobe.config import prep_settings
from helpers import moving_pattern, write_label_file
from test_scan import SquareSeer, _cfg, _scan


@pytest.fixture
def linked_videos(tmp_path, make_video):
    """data/videos holding a video, a link beside it, a link to a video in store/ and a link to a frame folder in
    store/; the label file data/labels.json names all four."""
    from PIL import Image

    make_video("store/a.mp4", num_frames=45, seed=1)
    (tmp_path / "store/frames").mkdir()
    for k, frame in enumerate(moving_pattern(12, 36, 64)):
        Image.fromarray(frame).save(tmp_path / f"store/frames/{k + 1:04d}.png")
    videos = tmp_path / "data/videos"
    make_video("data/videos/own.mp4", num_frames=45, seed=2)
    (videos / "beside.mp4").symlink_to("own.mp4")
    (videos / "linked.mp4").symlink_to(tmp_path / "store/a.mp4")
    (videos / "linked_frames").symlink_to(tmp_path / "store/frames", target_is_directory=True)
    write_label_file(
        tmp_path / "data/labels.json",
        [
            {"clip_id": name, "video": f"videos/{name}", "label": "normal", "split": "test"}
            for name in ("own.mp4", "beside.mp4", "linked.mp4")
        ]
        + [
            {"clip_id": "linked_frames", "video": "videos/linked_frames", "fps": 10, "label": "normal", "split": "test"}
        ],
    )
    return tmp_path


def test_data_prep_follows_links_into_allowed_roots_and_names_the_others(linked_videos):
    root = linked_videos
    report = prepare_dataset(root / "data/labels.json", root / "out", prep_settings(frame_size=32))
    reasons = {r["clip_id"]: r["reason"] for r in report["rejected"]}
    assert sorted(reasons) == ["linked.mp4", "linked_frames"]  # the link beside its target is followed
    assert reasons["linked.mp4"] == (
        f"{root / 'data/videos/linked.mp4'} is a link to {root / 'store/a.mp4'}, "
        f"outside the videos folder {root / 'data'}; add its folder to allowed_roots= "
        "to follow it"
    )
    assert reasons["linked_frames"].startswith(
        f"{root / 'data/videos/linked_frames'} is a link to {root / 'store/frames'}, outside the videos folder"
    )
    allowed = prepare_dataset(
        root / "data/labels.json", root / "out2", prep_settings(frame_size=32), allowed_roots=(str(root / "store"),)
    )
    assert allowed["num_rejected"] == 0 and allowed["num_prepared"] == 4, allowed["rejected"]


def test_image_links_follow_the_same_rule(tmp_path):
    """A frame folder whose images are links into a store: refused naming each link and target, followed once the
    store is an allowed root."""
    from PIL import Image

    (tmp_path / "store").mkdir()
    (tmp_path / "data/videos/clip").mkdir(parents=True)
    for k, frame in enumerate(moving_pattern(6, 36, 64)):
        Image.fromarray(frame).save(tmp_path / f"store/{k + 1:04d}.png")
        (tmp_path / f"data/videos/clip/{k + 1:04d}.png").symlink_to(tmp_path / f"store/{k + 1:04d}.png")
    labels = write_label_file(
        tmp_path / "data/labels.json",
        [{"clip_id": "clip", "video": "videos/clip", "fps": 10, "label": "normal", "split": "test"}],
    )
    report = prepare_dataset(labels, tmp_path / "out", prep_settings(frame_size=32))
    (reason,) = [r["reason"] for r in report["rejected"]]
    assert reason == (
        f"{tmp_path / 'data/videos/clip'}: image links to files outside the videos folder "
        f"{tmp_path / 'data'}: 0001.png -> {tmp_path / 'store/0001.png'}, 0002.png -> "
        f"{tmp_path / 'store/0002.png'}, 0003.png -> {tmp_path / 'store/0003.png'} (and 3 more); add "
        "their folder to allowed_roots= to follow them"
    )
    allowed = prepare_dataset(
        labels, tmp_path / "out2", prep_settings(frame_size=32), allowed_roots=(str(tmp_path / "store"),)
    )
    assert allowed["num_prepared"] == 1, allowed["rejected"]


def test_the_scan_follows_the_same_rule(linked_videos, capsys):
    root = linked_videos
    videos = root / "data/videos"
    assert _scan(_cfg(videos, root / "scan", "window_s=1", "stride_s=1"), SquareSeer()) == 0
    summary = json.loads((root / "scan" / "scan.json").read_text())
    assert [v["video_id"] for v in summary["videos"]] == ["own"]  # beside.mp4 is own.mp4
    assert [s["path"] for s in summary["same_file"]] == [str(videos / "beside.mp4")]
    (skipped,) = summary["skipped"]
    assert skipped["reason"] == (
        f"{videos / 'linked.mp4'} is a link to {root / 'store/a.mp4'}, outside the input "
        f"folder {videos}; add its folder to allowed_roots= to follow it"
    )
    assert f"scan: skipped {videos / 'linked.mp4'}: {skipped['reason']}" in capsys.readouterr().err
    allowed = _cfg(videos, root / "scan2", "window_s=1", "stride_s=1", f"allowed_roots=[{root / 'store'}]")
    assert _scan(allowed, SquareSeer()) == 0
    summary = json.loads((root / "scan2" / "scan.json").read_text())
    assert [v["video_id"] for v in summary["videos"]] == ["linked", "own"] and summary["skipped"] == []


def test_the_rule_blames_the_link_on_the_way_not_one_above_the_folder(tmp_path):
    from ghostprobe.links import AllowedRoots, PathNotAllowed, resolve_allowed

    (tmp_path / "real/videos/sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/a.mp4").write_bytes(b"x")
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)  # above the folder: not blamed
    (tmp_path / "real/videos/sub/deep").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    roots = AllowedRoots.of(tmp_path / "alias/videos")
    with pytest.raises(
        PathNotAllowed,
        match=f"^{tmp_path / 'alias/videos/sub/deep'} is a link to {tmp_path / 'elsewhere'}, outside the videos folder",
    ):
        resolve_allowed(tmp_path / "alias/videos/sub/deep/a.mp4", roots)
    with pytest.raises(PathNotAllowed, match="escapes the videos folder"):
        resolve_allowed(tmp_path / "alias/videos/../../elsewhere/a.mp4", roots)
    (tmp_path / "real/videos/loop").symlink_to(tmp_path / "real/videos/loop")
    with pytest.raises(PathNotAllowed, match="symbolic links form a loop"):
        resolve_allowed(tmp_path / "alias/videos/loop", roots)
    allowed = AllowedRoots.of(tmp_path / "alias/videos", [tmp_path / "elsewhere"])
    assert resolve_allowed(tmp_path / "alias/videos/sub/deep/a.mp4", allowed) == (tmp_path / "elsewhere/a.mp4")
