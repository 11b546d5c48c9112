"""Frame sampling policies: which frames the model sees."""


import pytest

from ghostprobe.sampling import FrameClock, SamplingError, sample_windows, uniform_indices


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
    (window,) = sample_windows({"policy": "fps", "target_fps": 2.0, "max_frames": 32, "min_frames": 4},
                               fps=30, num_frames=300, t_event_s=None, is_positive=False, seed_key="a")
    assert len(window.frame_indices) == 20 and window.frame_indices[1] - window.frame_indices[0] == 15
    (window,) = sample_windows({"policy": "fps", "target_fps": 10.0, "max_frames": 32, "min_frames": 4},
                               fps=30, num_frames=300, t_event_s=None, is_positive=False, seed_key="a")
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


EVENT = {"policy": "event_windows", "num_frames": 8, "window_s": 4.0, "event_position": 0.75, "jitter_s": 0.5,
         "windows_per_clip": 3}


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

    windows = sample_windows(SLIDING, fps=20.0, num_frames=80, t_event_s=3.0, is_positive=True, seed_key="a",
                             frame_times_s=VFR_TIMES)
    assert [w.end_s for w in windows] == [2.0, 2.5, 3.0]
    for window in windows:  # every frame shown inside the window, none after its end (the event)
        times = [clock.time_of(i) for i in window.frame_indices]
        assert window.start_s - 0.1 < min(times) and max(times) < window.end_s and len(times) == 8
        assert window.timestamps_s == pytest.approx([t - times[0] for t in times])  # from the window's first frame

    (every_half_second,) = sample_windows({"policy": "fps", "target_fps": 2.0, "max_frames": 32, "min_frames": 4},
                                          fps=20.0, num_frames=80, t_event_s=None, is_positive=False,
                                          seed_key="a", frame_times_s=VFR_TIMES)
    assert every_half_second.timestamps_s == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
