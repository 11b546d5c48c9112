"""Frame sampling policies: which frames the model sees."""

import numpy as np
import pytest

from ghostprobe.sampling import (
    FrameClock,
    SamplingError,
    make_window,
    sample_windows,
    sliding_windows,
    uniform_indices,
    window_sample_id,
)


def test_uniform_matches_original_video_llama_formula():
    # floor(arange(0, n, n / 8)) as in the original evaluation code.
    assert uniform_indices(75, 8) == [0, 9, 18, 28, 37, 46, 56, 65]
    assert uniform_indices(8, 8) == list(range(8))
    # A clip shorter than asked: all its frames, as the original's n_frms = min(n_frms, len(video)).
    assert uniform_indices(7, 8) == list(range(7))
    # The original's float step: 15 frames asked for 13 give 14 indices; the project reproduces that too.
    assert uniform_indices(15, 13) == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]
    with pytest.raises(SamplingError, match="cannot sample"):
        uniform_indices(0, 8)


def test_fps_policy_rate_and_cap():
    (window,) = sample_windows(
        {"policy": "fps", "target_fps": 2.0, "max_frames": 32, "min_frames": 4},
        fps=30,
        num_frames=300,
        t_event_s=None,
        is_positive=False,
        seed_key="a",
    )
    assert len(window.frame_indices) == 20 and window.frame_indices[1] - window.frame_indices[0] == 15
    (window,) = sample_windows(
        {"policy": "fps", "target_fps": 10.0, "max_frames": 32, "min_frames": 4},
        fps=30,
        num_frames=300,
        t_event_s=None,
        is_positive=False,
        seed_key="a",
    )
    assert len(window.frame_indices) == 32


SLIDING = {"policy": "sliding", "num_frames": 8, "window_s": 2.0, "stride_s": 0.5}


def test_sliding_windows_of_a_positive_end_before_the_event():
    windows = sample_windows(SLIDING, fps=15, num_frames=150, t_event_s=6.2, is_positive=True, seed_key="a")
    assert [w.end_s for w in windows] == [2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0]
    for window in windows:
        assert FrameClock(15, 150).time_of(max(window.frame_indices)) < 6.2 and len(window.frame_indices) == 8
    negatives = sample_windows(SLIDING, fps=15, num_frames=150, t_event_s=6.2, is_positive=False, seed_key="a")
    assert negatives[-1].end_s == 10.0


def test_sliding_rejects_event_before_first_window():
    with pytest.raises(SamplingError, match="no 2.0 s window ends before the event at 1.50 s"):
        sample_windows(SLIDING, fps=15, num_frames=150, t_event_s=1.5, is_positive=True, seed_key="a")


EVENT = {
    "policy": "event_windows",
    "num_frames": 8,
    "window_s": 4.0,
    "event_position": 0.75,
    "jitter_s": 0.5,
    "windows_per_clip": 3,
}


def test_event_windows_contain_event_and_are_seeded():
    windows = sample_windows(EVENT, fps=30, num_frames=600, t_event_s=10.0, is_positive=True, seed_key="0:c1")
    again = sample_windows(EVENT, fps=30, num_frames=600, t_event_s=10.0, is_positive=True, seed_key="0:c1")
    other = sample_windows(EVENT, fps=30, num_frames=600, t_event_s=10.0, is_positive=True, seed_key="1:c1")
    assert windows == again and windows != other
    for window in windows:
        assert window.end_s - window.start_s == pytest.approx(4.0)
        assert 10.0 - 3.0 - 0.5 <= window.start_s <= 10.0 - 3.0 + 0.5
        assert window.start_s <= 10.0 <= window.end_s


def test_event_windows_stay_inside_clip_and_reject_short_clips():
    (window, *_) = sample_windows(EVENT, fps=30, num_frames=150, t_event_s=0.5, is_positive=True, seed_key="x")
    assert window.start_s == 0.0 and max(window.frame_indices) < 150
    with pytest.raises(SamplingError, match="shorter than window_s 4.0"):
        sample_windows(EVENT, fps=30, num_frames=90, t_event_s=1.0, is_positive=True, seed_key="x")


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="unknown sampling policy 'random'"):
        sample_windows({"policy": "random"}, fps=30, num_frames=90, t_event_s=None, is_positive=False, seed_key="x")


# A variable-frame-rate clip as phones record: 10 fps for 2 s, then 30 fps for 2 s (80 frames, 20 fps on average).
VFR_TIMES = tuple([k * 0.1 for k in range(20)] + [2.0 + k / 30 for k in range(60)])


def test_variable_frame_rate_clips_are_sampled_by_presentation_time():
    clock = FrameClock(20.0, 80, VFR_TIMES)
    assert clock.index_at(1.0) == 10 and clock.index_at(2.5) == 35 and clock.index_at(99) == 79
    assert FrameClock(20.0, 80).index_at(1.0) == 20  # what index / average fps would have taken

    windows = sample_windows(
        SLIDING, fps=20.0, num_frames=80, t_event_s=3.0, is_positive=True, seed_key="a", frame_times_s=VFR_TIMES
    )
    assert [w.end_s for w in windows] == [2.0, 2.5, 3.0]
    for window in windows:  # every frame shown inside the window, none after its end (the event)
        times = [clock.time_of(i) for i in window.frame_indices]
        assert window.start_s - 0.1 < min(times) and max(times) < window.end_s and len(times) == 8
        assert window.timestamps_s == pytest.approx([t - times[0] for t in times])  # from the window's first frame

    (every_half_second,) = sample_windows(
        {"policy": "fps", "target_fps": 2.0, "max_frames": 32, "min_frames": 4},
        fps=20.0,
        num_frames=80,
        t_event_s=None,
        is_positive=False,
        seed_key="a",
        frame_times_s=VFR_TIMES,
    )
    assert every_half_second.timestamps_s == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])


# --- one window definition ---------------------------------------------------------------------------------------


def test_a_window_ending_at_the_clip_end_holds_the_last_frame():
    clock = FrameClock(10.0, 100)
    assert make_window(clock, 8.0, 10.0, 100).frame_indices == tuple(range(80, 100))  # 20 frames, frame 99 included
    assert make_window(clock, 2.0, 4.0, 100).frame_indices == tuple(range(20, 40))  # frame 40 is shown at 4.0 s
    # A window ending between two frames holds the frame shown just before its end (frame 37 at 2.4667 s).
    assert make_window(FrameClock(15.0, 75), 0.5, 2.5, 100).frame_indices == tuple(range(7, 38))
    last = sample_windows(SLIDING, fps=10, num_frames=100, t_event_s=None, is_positive=False, seed_key="a")[-1]
    assert (last.start_s, last.end_s) == (8.0, 10.0) and last.frame_indices == tuple(
        80 + i for i in uniform_indices(20, 8)
    )


def test_window_timestamps_count_from_the_window_start():
    clock = FrameClock(10.0, 100)
    window = sliding_windows(clock, 2.0, 0.5, 8)[6]  # [3.0, 5.0)
    assert window.index == 6 and window.frame_indices == (30, 32, 35, 37, 40, 42, 45, 47)
    assert window.timestamps_s == (0.0, 0.2, 0.5, 0.7, 1.0, 1.2, 1.5, 1.7)
    # A whole clip is the window from 0: its times are index / fps, exactly what the original prints.
    (whole,) = sample_windows(
        {"policy": "uniform", "num_frames": 8}, fps=15, num_frames=75, t_event_s=None, is_positive=False, seed_key="a"
    )
    assert whole.timestamps_s == tuple(i / 15 for i in uniform_indices(75, 8))


def test_sample_ids_stay_unique_next_to_a_clip_named_like_a_window():
    assert window_sample_id("x", 1) == "x#w1" and window_sample_id("x#w1", 0) == "x#w1#w0"
    assert window_sample_id("x#w1", None) == "x#w1"  # whole-clip datasets keep the clip id


def test_prep_eval_and_scan_cut_the_same_windows(tmp_path, make_video):
    """One clip through data prep (sliding) and eval's loader, and through the scan: same frames, same times, same
    window ends and sample ids, same pixels."""
    from datasets import load_from_disk

    from data_prep.prepare import prepare_dataset
    from eval.evaluate import load_batch
    from ghostprobe.config import prep_settings
    from ghostprobe.video import read_frames
    from helpers import write_label_file
    from scan.recordings import VideoJob, probe, scan_windows, window_clip

    video = make_video("videos/drive.mp4", num_frames=90, fps=15, width=96, height=64)
    labels = write_label_file(
        tmp_path / "labels.json",
        [
            {"clip_id": "drive", "video": "videos/drive.mp4", "label": "normal", "split": "test"},
            # a clip whose id looks like a window of `drive`: its sample ids must not collide with drive's
            {"clip_id": "drive#w1", "video": "videos/drive.mp4", "label": "normal", "split": "test"},
        ],
    )
    report = prepare_dataset(labels, tmp_path / "prepared", prep_settings(sampling="sliding", frame_size=32))
    assert report["num_rejected"] == 0, report["rejected"]
    test = load_from_disk(str(tmp_path / "prepared"))["test"]
    assert len(set(test["sample_id"])) == len(test) == 18
    rows = [r for r in test.with_format(None) if r["clip_id"] == "drive"]

    job = VideoJob("drive", video)
    probe(job, 1)
    windows = scan_windows(job.clock, 2.0, 0.5, 8)
    assert len(windows) == len(rows) == 9  # 6 s: windows ending 2.0, 2.5, ..., 6.0
    clips, metas, failed = load_batch(
        test.with_format("numpy", columns=["frames"], output_all_columns=True),
        test.with_format(None),
        [test["sample_id"].index(r["sample_id"]) for r in rows],
    )
    assert not failed
    for row, window, clip in zip(rows, windows, clips, strict=True):
        assert row["window_index"] == window.index and row["sample_id"] == f"drive#w{window.index}"
        assert tuple(row["frame_indices"]) == window.frame_indices
        assert tuple(row["timestamps_s"]) == window.timestamps_s == clip.timestamps_s
        assert (row["window_start_s"], row["window_end_s"]) == pytest.approx((window.start_s, window.end_s))
        frames = read_frames(video, list(window.frame_indices), job.info, size=32)
        scanned = window_clip(job, window, dict(zip(window.frame_indices, frames, strict=True)))
        assert scanned.clip_id == clip.clip_id and np.array_equal(scanned.frames, clip.frames)
