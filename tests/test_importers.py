"""Importers on the real annotation files in ../shared/datasets (read in place, never copied), and on synthetic
files of the exact layouts of those not shared (CAP-DATA, Nexar, DAD, a user's CSV)."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from ghostprobe.config import compose
from ghostprobe.importers import AnnotationFileError, import_labels
from ghostprobe.importers.a3d import UnsafePickleError, load_numpy_pickle
from helpers import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared" / "datasets"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (the real annotation files) is not here")


def importer(name: str, **overrides) -> dict:
    """conf/importer/NAME.yaml as the command line composes it, with `overrides` (key -> value) on top."""
    from omegaconf import OmegaConf

    cfg = compose("import_labels", [f"dataset={name}", "annotations=a", "root=r", "out=o"])
    return {**OmegaConf.to_container(cfg.importer, resolve=True), **overrides}


def run(name: str, annotations, root, keep_missing=True, **overrides):
    result = import_labels(name, importer(name, **overrides), annotations, root, keep_missing)
    return result, {clip.clip_id: clip.to_json() for clip in result.clips}


# --- DADA-2000 (real file) -----------------------------------------------------------------------------------------


@needs_shared
def test_dada2000_every_row_converted_by_type_and_video(tmp_path):
    result, clips = run("dada2000", SHARED / "mm_au/dada_text_annotations.xlsx", tmp_path)
    assert len(clips) == 1962 and not result.problems
    # (type, video) is the key: video 001 exists under 52 types, each its own clip
    assert sum(clip_id.endswith("_001") for clip_id in clips) == 52
    assert clips["dada2000_1_001"] == {
        "clip_id": "dada2000_1_001",
        "video": "images_1_001.avi",
        "label": "ghost_probing",
        # frames 30, 63, 115 of 440, numbered from 1 at 30 fps
        "event": {"t_first_visible_s": 0.9667, "t_event_s": 2.0667, "t_end_s": 3.8, "actor": "pedestrian"},
        "context": {"light": "day", "weather": "sunny", "scene": "urban"},
        "notes": "a pedestrian crosses the road",
        "label_quality": "weak",
        "source": {
            "dataset": "dada2000",
            "original_id": "1/001",
            "category_id": 1,
            "category_name": "ego-car hits a crossing pedestrian",
            "cause": "Pedestrian does not notice the coming vehicles when crossing the street",
            "candidate_reason": "category",
        },
    }
    # a row without an accident (accident frame -1) is normal, without event times
    assert clips["dada2000_1_011"]["label"] == "normal" and "event" not in clips["dada2000_1_011"]
    # a "hits a motorbike" row (other_hazard by category) whose cause says the ego car's view was blocked
    promoted = [c for c in clips.values() if c["source"]["category_id"] == 6 and c["label"] == "ghost_probing"]
    assert len(promoted) == 5
    assert all(c["source"]["candidate_reason"] == "cause text match (ego-car's vision is blocked)" for c in promoted)
    both = [
        c
        for c in clips.values()
        if c["source"].get("candidate_reason") == "category, cause text match (ego-car's vision is blocked)"
    ]
    assert {c["source"]["category_id"] for c in both} == {1, 3, 5, 10}
    labels = [c["label"] for c in clips.values()]
    assert (labels.count("ghost_probing"), labels.count("normal")) == (405, 17)
    assert result.by_category["5 ego-car hits a crossing motorbike"] == {"ghost_probing": 157}
    assert result.by_category["6 ego-car hits a motorbike"] == {"ghost_probing": 5, "other_hazard": 114}
    assert len(result.missing) == 1962  # nothing under the empty root, kept to plan with


@needs_shared
def test_dada2000_finds_the_avi_or_the_frame_folder_and_lists_the_rest_as_missing(tmp_path):
    (tmp_path / "images_1_001.avi").write_bytes(b"not read by the importer")
    (tmp_path / "1/002/images").mkdir(parents=True)
    result, clips = run("dada2000", SHARED / "mm_au/dada_text_annotations.xlsx", tmp_path, keep_missing=False)
    assert set(clips) == {"dada2000_1_001", "dada2000_1_002"}
    assert clips["dada2000_1_002"]["video"] == "1/002" and clips["dada2000_1_002"]["fps"] == 30
    assert "fps" not in clips["dada2000_1_001"]  # a video file's rate is read from the file
    assert len(result.missing) == 1960
    assert result.missing[0] == "dada2000_1_003 (tried: images_1_003.avi, 1/003)"
    summary = result.summary(show=2)
    assert "1960 videos missing under root" in summary and "dada2000_1_004 (tried" in summary
    assert "dada2000_1_005" not in summary


# --- DoTA (real files) ------------------------------------------------------------------------------------------------


@needs_shared
def test_dota_both_metadata_files_with_fixed_splits_and_clamping(tmp_path):
    result, clips = run("dota", SHARED / "dota", tmp_path)
    assert len(clips) == 3275 + 1402 and not result.problems
    assert clips["dota_0RJPQ_97dcs_000199"] == {
        "clip_id": "dota_0RJPQ_97dcs_000199",
        "video": "frames/0RJPQ_97dcs_000199",
        "label": "other_hazard",
        "event": {"t_first_visible_s": 4.0, "t_event_s": 4.0, "t_end_s": 7.0},
        "group": "dota_0RJPQ_97dcs",
        "split": "train",
        "fps": 10.0,
        "label_quality": "weak",
        "context": {},
        "source": {"dataset": "dota", "original_id": "0RJPQ_97dcs_000199", "category_name": "ego: leave_to_right"},
    }
    assert clips["dota_0RJPQ_97dcs_000387"]["split"] == "val"
    # anomaly_end 119 in a clip of 114 frames: clamped to the clip's end (11.4 s) and said so
    assert clips["dota_gXezhrOijmQ_004598"]["event"]["t_end_s"] == 11.4
    assert result.warnings == [
        "metadata_train.json clip gXezhrOijmQ_004598: clamped to the clip's end: anomaly_end 119 > 114 frames"
    ]
    pedestrians = [c for c in clips.values() if c["source"]["category_name"].endswith(": pedestrian")]
    assert len(pedestrians) == 100
    assert all(
        c["label"] == "ghost_probing"
        and c["event"]["actor"] == "pedestrian"
        and c["source"]["candidate_reason"] == "category"
        for c in pedestrians
    )
    assert {c["label"] for c in clips.values() if c not in pedestrians} == {"other_hazard"}


# --- CCD (real file, both forms) --------------------------------------------------------------------------------------


@needs_shared
def test_ccd_reads_the_bracketed_and_the_bare_form_alike_plus_normal_negatives(tmp_path):
    bare = tmp_path / "Crash-1500-bare.txt"  # the other copies' form: 000001,0,0,...,1,000285,0000,Day,Normal,Yes
    bare.write_text((SHARED / "ccd/Crash-1500.txt").read_text().replace("[", "").replace("]", "").replace(", ", ","))
    assert "[" not in bare.read_text()
    (tmp_path / "videos/Normal").mkdir(parents=True)
    for name in ("000001.mp4", "000002.mp4"):
        (tmp_path / "videos/Normal" / name).write_bytes(b"")
    result, bracketed = run("ccd", SHARED / "ccd/Crash-1500.txt", tmp_path)
    _, stripped = run("ccd", bare, tmp_path)
    assert bracketed == stripped and len(bracketed) == 1502 and not result.problems
    assert bracketed["ccd_000001"] == {
        "clip_id": "ccd_000001",
        "video": "videos/Crash-1500/000001.mp4",
        "label": "other_hazard",
        "event": {"t_event_s": 3.2, "t_end_s": 5.0},
        "context": {"light": "day", "weather": "clear"},
        "group": "ccd_youtube_0000",
        "label_quality": "weak",
        "source": {"dataset": "ccd", "original_id": "000001", "category_name": "crash, ego-car involved"},
    }
    assert bracketed["ccd_normal_000002"]["label"] == "normal"
    assert dict(result.by_category["Normal"]) == {"normal": 2}


# --- A3D (real pickle, and pickles that try to run code) --------------------------------------------------------------


@needs_shared
def test_a3d_real_pickle_is_read_with_numpy_arrays_only(tmp_path):
    result, clips = run("a3d", SHARED / "a3d/A3D_labels.pkl", tmp_path)
    assert len(clips) == 1500 and not result.problems
    # 131 frames, the accident from the 41st (000041.jpg) to the last
    assert clips["a3d_LNT8NB2Dv-E_000001"]["event"] == {"t_event_s": 4.0, "t_end_s": 13.1}
    assert clips["a3d_LNT8NB2Dv-E_000001"]["group"] == "a3d_LNT8NB2Dv-E"
    assert {c["label"] for c in clips.values()} == {"other_hazard"}
    assert len([w for w in result.warnings if "no positive frame" in w]) == 2


class RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("form", ["global_opcode", "reduce_in_a_dict"])
def test_a_pickle_naming_anything_but_numpy_is_refused_by_name_and_nothing_runs(tmp_path, form):
    marker = tmp_path / "ran"
    path = tmp_path / "A3D_labels.pkl"
    if form == "global_opcode":  # protocol 0 by hand: GLOBAL os.system, call it with one string
        path.write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
        named = "os.system"
    else:  # a real A3D-like entry first (numpy arrays are allowed), then the payload
        clips = {
            "a_000001": {"video_name": "a", "target": np.zeros(5, np.int64)},
            "b_000002": {"video_name": "b", "target": RunsCommand(f"touch {marker}")},
        }
        path.write_bytes(pickle.dumps(clips, protocol=3))
        named = f"{os.system.__module__}.system"  # posix.system on Linux
    with pytest.raises(UnsafePickleError, match=rf"refused: the pickle names {named}, .* nothing in it was run"):
        load_numpy_pickle(path)
    with pytest.raises(AnnotationFileError, match=named):
        run("a3d", path, tmp_path)
    assert not marker.exists()


# --- CAP-DATA (synthetic .xls of the real layout) ---------------------------------------------------------------------

CAP_HEADER = [
    "video",
    "weather(sunny,rainy,snowy,foggy)1-4",
    "light(day,night)1-2",
    "scenes(highway,tunnel,mountain,urban,rural)1-5",
    "linear(arterials,curve,intersection,T-junction,ramp) 1-5",
    "type",
    "whether an accident occurred (1/0)",
    "abnormal start frame",
    "abnormal end frame",
    "accident frame",
    "total frames",
    "texts",
    "causes",
    "measures",
]


def write_cap_xls(path, rows, header=CAP_HEADER):
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("annotation file")
    for c, text in enumerate(header):
        sheet.write(0, c, text)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    names = book.add_sheet("Sheet1")
    for r, text in enumerate(
        ["001 ego-car hits a crossing pedestrian", "011 ego-car hits a car", "037 motorbike falls down"]
    ):
        names.write(r, 0, text)
    book.save(str(path))
    return path


def test_cap_columns_are_found_by_header_text_in_cap_order(tmp_path):
    rows = [  # video ids stored as numbers (padded back to 6 digits) and as text
        [
            1537,
            1,
            2,
            4,
            1,
            1,
            1,
            49,
            120,
            90,
            150,
            "[CLS]a pedestrian crosses the road[SEP]",
            "The ego-car's vision is blocked by a parked bus",
            "slow down",
        ],
        ["001538", 2, 1, 1, 1, 11, 1, 10, 80, 40, 100, "[CLS]lead vehicle stops[SEP]", "too close", "keep distance"],
        [1539, 1, 1, 4, 1, 37, 0, 20, 60, -1, 90, "", "", ""],
        [1540, 1, 1, 4, 1, "one", 1, 20, 60, 30, 90, "", "", ""],
    ]
    xls = write_cap_xls(tmp_path / "cap_text_annotations.xls", rows)
    (tmp_path / "11-20/11/001538/images").mkdir(parents=True)  # <range>/<type>/<video>
    result, clips = run("cap", xls, tmp_path)
    assert set(clips) == {"cap_001537", "cap_001538", "cap_001539"}
    first = clips["cap_001537"]
    # abnormal start 49, accident 90 (the 10th column here, not the 9th), abnormal end 120, from 1 at 30 fps
    assert first["event"] == {"t_first_visible_s": 1.6, "t_event_s": 2.9667, "t_end_s": 3.9667, "actor": "pedestrian"}
    assert first["label"] == "ghost_probing" and first["context"] == {
        "weather": "sunny",
        "light": "night",
        "scene": "urban",
    }
    assert first["source"]["candidate_reason"] == "category, cause text match (ego-car's vision is blocked)"
    assert clips["cap_001538"]["video"] == "11-20/11/001538" and clips["cap_001538"]["fps"] == 30
    assert clips["cap_001538"]["source"]["category_name"] == "ego-car hits a car"  # from the workbook's Sheet1
    assert clips["cap_001539"]["label"] == "normal"
    assert [str(p) for p in result.problems] == [
        "cap_text_annotations.xls sheet 'annotation file' row 5: type 'one' is not a whole number"
    ]
    assert dict(result.by_category["37 motorbike falls down (no accident)"]) == {"normal": 1}


def test_cap_without_a_column_names_the_headers_it_found(tmp_path):
    header = [h if h != "accident frame" else "collision frame" for h in CAP_HEADER]
    xls = write_cap_xls(tmp_path / "cap.xls", [], header=header)
    with pytest.raises(
        AnnotationFileError,
        match=r"no column headed 'accident frame' \(for accident_frame\).*"
        r"Headers found: .*'collision frame'",
    ):
        run("cap", xls, tmp_path)


# --- Nexar (synthetic train.csv and metadata.csv) ---------------------------------------------------------------------


def test_nexar_train_csv_keeps_ids_as_text_and_times_in_seconds(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("id,time_of_event,time_of_alert,target\n00822,19.5,18.633,1\n01924,,,0\n00031,12.1,11.0,yes\n")
    result, clips = run("nexar", csv_path, tmp_path)
    assert clips["nexar_00822"] == {
        "clip_id": "nexar_00822",
        "video": "train/00822.mp4",
        "label": "other_hazard",
        "event": {"t_first_visible_s": 18.633, "t_event_s": 19.5},
        "label_quality": "weak",
        "context": {},
        "source": {"dataset": "nexar", "original_id": "00822", "category_name": "positive (collision or near-miss)"},
    }
    assert clips["nexar_01924"]["label"] == "normal" and "event" not in clips["nexar_01924"]
    assert [str(p) for p in result.problems] == ["train.csv line 4: target 'yes' is neither 1 nor 0"]


def test_nexar_metadata_csv_names_files_relative_to_its_folder(tmp_path):
    (tmp_path / "train").mkdir()
    csv_path = tmp_path / "train/metadata.csv"
    csv_path.write_text(
        "file_name,time_of_event,time_of_alert,light_conditions,weather,scene\n"
        "positive/00822.mp4,19.5,18.633,Day,Rain,Urban\nnegative/01924.mp4,,,Night,Clear,Highway\n"
    )
    (tmp_path / "train/positive").mkdir()
    (tmp_path / "train/positive/00822.mp4").write_bytes(b"")
    result, clips = run("nexar", csv_path, tmp_path, keep_missing=False)
    assert list(clips) == ["nexar_00822"]
    assert clips["nexar_00822"]["video"] == "train/positive/00822.mp4"
    assert clips["nexar_00822"]["context"] == {"light": "day", "weather": "rain", "scene": "urban"}
    assert result.missing == ["nexar_01924 (tried: train/negative/01924.mp4)"]


# --- DAD (synthetic folder layout) ------------------------------------------------------------------------------------


def test_dad_folders_give_labels_splits_and_the_accident_at_frame_90(tmp_path):
    for subset in ("training", "testing"):
        for kind in ("positive", "negative"):
            (tmp_path / "videos" / subset / kind).mkdir(parents=True)
            (tmp_path / "videos" / subset / kind / "000001.mp4").write_bytes(b"")
    result, clips = run("dad", tmp_path / "videos", tmp_path)
    assert set(clips) == {f"dad_{s}_{k}_000001" for s in ("training", "testing") for k in ("positive", "negative")}
    assert clips["dad_training_positive_000001"] == {
        "clip_id": "dad_training_positive_000001",
        "video": "videos/training/positive/000001.mp4",
        "label": "other_hazard",
        "event": {"t_event_s": 4.5},
        "split": "train",
        "label_quality": "weak",
        "context": {},
        "source": {"dataset": "dad", "original_id": "training/positive/000001", "category_name": "positive"},
    }
    assert clips["dad_testing_negative_000001"]["label"] == "normal"
    assert clips["dad_testing_negative_000001"]["split"] == "test"


# --- a user's CSV -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_a_users_csv_in_every_form_and_each_bad_row_named(tmp_path, delimiter):
    lines = [
        ["clip", "label", "time"],
        ["route1/a.mp4", "5s: ghost probing"],
        ["route1/b.mp4", "none"],
        ["route1/c.mp4", "13: cut-in"],
        ["route1/d.mp4", "ghost_probing", "4.2"],
        ["route1/e.mp4", "Other hazard", "1:02.5"],
        ["route1/f.mp4", "ghost probing"],
        ["route1/g.mp4", "ghost"],
        ["route1/h.mp4", "3s: cut in", "4"],
        ["route1/i.mp4", "ghost probing", "soon"],
        ["route1/j.mp4"],
        ["route1/a.mp4", "none"],
        ["# a comment line"],
        ["route1/k", "ghost probing", "2"],
    ]
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(delimiter.join(cells) for cells in lines) + "\n", encoding="utf-8")
    result, clips = run("csv", path, tmp_path)
    assert clips["route1/a"]["event"] == {"t_first_visible_s": 5.0, "t_event_s": 5.0}
    assert clips["route1/a"]["label_quality"] == "gold" and clips["route1/a"]["video"] == "route1/a.mp4"
    assert clips["route1/b"]["label"] == "normal" and "event" not in clips["route1/b"]
    assert clips["route1/c"]["label"] == "cut_in" and clips["route1/c"]["event"]["t_event_s"] == 13.0
    assert clips["route1/d"]["event"]["t_event_s"] == 4.2
    assert clips["route1/e"]["label"] == "other_hazard" and clips["route1/e"]["event"]["t_event_s"] == 62.5
    assert clips["route1/k"]["video"] == "route1/k"  # no extension: the first layout tried, kept as missing
    problems = [str(p) for p in result.problems]
    assert problems[0].startswith("labels.csv line 7: clip 'route1/f.mp4': a ghost probing needs its time")
    assert problems[1].startswith("labels.csv line 8: label 'ghost' is not a known word; known: ")
    assert problems[2] == "labels.csv line 9: two times: '3s' in the label and '4' in the time column"
    assert problems[3].startswith("labels.csv line 10: time 'soon' is not seconds")
    assert problems[4].startswith("labels.csv line 11: no label for clip 'route1/j.mp4'")
    assert problems[5] == "labels.csv line 12: clip 'route1/a' again (first at labels.csv line 2)"
    assert len(problems) == 6


def test_the_command_writes_the_label_file_and_prints_the_summary(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos/a.mp4").write_bytes(b"")
    path = tmp_path / "mine.csv"
    path.write_text("videos/a.mp4,5s: ghost probing\nvideos/b.mp4,none\nvideos/c.mp4,maybe\n")
    out = tmp_path / "out/labels.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "data_prep/import_labels.py"),
            "dataset=csv",
            f"annotations={path}",
            f"root={tmp_path}",
            f"out={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "imported 1 clips (gold 1); 1 rows unreadable; 1 videos missing under root" in result.stdout
    assert "ghost probing  " in result.stdout and "-> ghost_probing 1" in result.stdout
    assert "mine.csv line 3: label 'maybe' is not a known word" in result.stdout
    doc = json.loads(out.read_text())
    assert [c["clip_id"] for c in doc["clips"]] == ["videos/a"]
    report = json.loads((tmp_path / "out/labels.import_report.json").read_text())
    assert report["missing"] == ["videos/b (tried: videos/b.mp4)"]
    unknown = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "data_prep/import_labels.py"),
            "dataset=nope",
            f"annotations={path}",
            f"root={tmp_path}",
            f"out={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 1 and "Could not find 'dataset/nope'" in unknown.stderr
