"""The synthetic clip generator: deterministic output, labels that match what is drawn, a full scenario mix, real
H.264 files, the Hydra entry point, and write_video's MPEG-4/avi path used by other tests."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import av
import decord
import numpy as np
import pytest

from ghostprobe.labels import load_labels
from ghostprobe.synth import SCENARIO_LABELS, generate, render_clip, sample_specs
from ghostprobe.video import write_video

REPO_ROOT = Path(__file__).resolve().parents[1]


def decode_all(path: Path) -> np.ndarray:
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """40 clips of 2 s at 160x90: every scenario, cheap to render."""
    out = tmp_path_factory.mktemp("synth_small")
    labels = generate(out, num_clips=40, seed=0, width=160, height=90, fps=15, duration_s=2.0)
    return out, labels


def test_same_seed_same_files_other_seed_differs(tmp_path):
    kwargs = dict(num_clips=5, width=160, height=90, fps=15, duration_s=1.0)
    generate(tmp_path / "a", seed=3, **kwargs)
    generate(tmp_path / "b", seed=3, workers=2, **kwargs)  # in parallel processes: still the same files
    generate(tmp_path / "c", seed=4, **kwargs)
    assert (tmp_path / "a/labels.json").read_bytes() == (tmp_path / "b/labels.json").read_bytes()
    assert (tmp_path / "a/labels.json").read_bytes() != (tmp_path / "c/labels.json").read_bytes()
    for k in range(5):
        name = f"videos/synth_{k:05d}.mp4"
        assert np.array_equal(decode_all(tmp_path / "a" / name), decode_all(tmp_path / "b" / name)), name
    assert not np.array_equal(
        decode_all(tmp_path / "a/videos/synth_00000.mp4"), decode_all(tmp_path / "c/videos/synth_00000.mp4")
    )


def test_ghost_probing_times_match_the_pixels():
    specs = sample_specs(5, seed=11, duration_s=3.0, scenario_weights={"ghost_probing": 1.0})
    for spec in specs:
        clip, empty = render_clip(spec), render_clip(spec, with_actor=False)
        event = clip.label.event
        first = round(event.t_first_visible_s * spec.fps)
        entry = round(event.t_event_s * spec.fps)
        assert first > 0, f"{spec.clip_id}: the actor must start hidden"
        # Before t_first_visible_s the actor changes no pixel at all: it really is hidden, not just small.
        assert np.array_equal(clip.frames[:first], empty.frames[:first]), spec.clip_id
        assert clip.actor_visible_px[first] > 0 and clip.actor_visible_px[:first].sum() == 0
        assert np.any(clip.frames[first] != empty.frames[first]), f"{spec.clip_id}: first visible but not drawn"
        assert 0 < event.t_first_visible_s <= event.t_event_s <= event.t_end_s <= spec.duration_s
        assert clip.actor_in_path[entry] and not clip.actor_in_path[:entry].any()
        # The emergence is mid-clip, so 8 uniformly sampled frames catch both the hidden and the revealed part.
        assert 0.35 <= event.t_event_s / spec.duration_s <= 0.85
        assert event.occluder == spec.boxes[spec.key_box].kind and event.side in ("left", "right")
        assert empty.label is None


def test_look_alikes_behave_as_named():
    weights = {"visible_crossing": 1.0, "emerge_no_path": 1.0, "cut_in": 1.0}
    for spec in sample_specs(6, seed=5, duration_s=3.0, scenario_weights=weights):
        clip = render_clip(spec)
        event = clip.label.event
        if spec.scenario == "emerge_no_path":
            assert clip.label.label == "normal" and not clip.actor_in_path.any()
            assert event.t_first_visible_s > 0 and event.t_event_s is None
        else:
            # Seen all the way from the start of the clip until it enters the path: no emergence.
            entry = round(event.t_event_s * spec.fps)
            assert (clip.actor_visible_px[: entry + 1] > 0).all(), spec.clip_id
            assert event.t_first_visible_s == 0.0 and event.occluder is None
            assert clip.label.label == SCENARIO_LABELS[spec.scenario]


def test_scenario_mix_and_labels_validate(small_set):
    out, labels = small_set
    scenarios = Counter(clip.notes for clip in labels)
    assert set(scenarios) == set(SCENARIO_LABELS)
    assert scenarios["ghost_probing"] == 16  # 0.4 of 40: shares are allotted, not drawn
    assert all(clip.label == SCENARIO_LABELS[clip.notes] for clip in labels)
    loaded = load_labels(out / "labels.json")
    assert loaded.problems == [] and loaded.warnings == []
    assert [c.clip_id for c in loaded.clips] == [f"synth_{k:05d}" for k in range(40)]
    groups = Counter(clip.group for clip in labels)
    assert max(groups.values()) <= 3 and len(groups) < 40  # routes: 1-3 consecutive clips share a background
    doc = json.loads((out / "labels.json").read_text())
    assert doc["schema_version"] == 1


def test_videos_are_h264_at_the_requested_geometry(small_set):
    out, labels = small_set
    for clip in labels[:3]:
        path = out / clip.video
        reader = decord.VideoReader(str(path))
        assert len(reader) == 30 and reader.get_avg_fps() == pytest.approx(15.0)
        assert reader[0].shape == (90, 160, 3)
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "h264"


def test_hydra_entry_point(tmp_path):
    out, cwd = tmp_path / "set", tmp_path / "cwd"
    cwd.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "data_prep/synth.py"),
            f"out_dir={out}",
            "num_clips=4",
            "seed=1",
            "duration_s=2",
            "width=128",
            "height=72",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 4 clips" in result.stdout
    loaded = load_labels(out / "labels.json")
    assert len(loaded.clips) == 4 and loaded.problems == []
    assert decord.VideoReader(str(out / loaded.clips[0].video))[0].shape == (72, 128, 3)
    # the settings are recorded beside the clips, and Hydra writes nothing where the command ran
    assert json.loads((out / "synth_config.json").read_text())["num_clips"] == 4 and list(cwd.iterdir()) == []


def test_write_video_mpeg4_avi_reads_back(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (1, 660, 1584, 3), dtype=np.uint8) // 4 + 60, 6, axis=0)
    for t in range(6):
        frames[t, :, 200 * t : 200 * t + 150] = 240
    path = write_video(tmp_path / "dashcam.avi", frames, 30, codec="mpeg4")
    decoded = decode_all(path)
    assert decoded.shape == frames.shape
    assert decord.VideoReader(str(path)).get_avg_fps() == pytest.approx(30.0)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
        assert len([f for f in container.decode(video=0)]) == 6
    # The moving bar is where it was drawn: the file holds these frames, not just some frames.
    assert decoded[3, :, 650:700].mean() > 200 and decoded[3, :, 0:100].mean() < 160


def test_write_video_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 90, 161, 3), np.uint8), 15)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "float.mp4", np.zeros((2, 90, 160, 3), np.float32), 15)


def test_bad_scenario_weights_are_named():
    with pytest.raises(ValueError, match="ghost_probbing"):
        sample_specs(4, seed=0, scenario_weights={"ghost_probbing": 1.0})
    specs = sample_specs(6, seed=0, scenario_weights={"cut_in": 1.0, "ghost_probing": 0})
    assert {s.scenario for s in specs} == {"cut_in"}


def test_light_and_weather_mix_changes_only_light_and_weather():
    default = sample_specs(30, seed=4)
    counts = Counter(spec.route.light for spec in default)
    assert set(counts) == {"day", "dusk", "night"}  # the default mix has every light in 30 clips
    night_fog = sample_specs(30, seed=4, light_weights={"night": 1.0}, weather_weights={"fog": 2.0})
    assert {(s.route.light, s.route.weather) for s in night_fog} == {("night", "fog")}
    # the same clips otherwise: scenarios, actors, roads
    assert [s.scenario for s in night_fog] == [s.scenario for s in default]
    assert [s.actor for s in night_fog] == [s.actor for s in default]
    assert [s.route.road for s in night_fog] == [s.route.road for s in default]
    with pytest.raises(ValueError, match="unknown name.*'noon'.*light_weights"):
        sample_specs(4, seed=0, light_weights={"noon": 1.0})
    with pytest.raises(ValueError, match="weather_weights must be >= 0 with a positive sum"):
        sample_specs(4, seed=0, weather_weights={"fog": 0.0})
