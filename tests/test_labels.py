"""The label schema: what a user sees when a label file is wrong."""

import json
import re

import pytest

from ghostprobe.labels import LabelFileError, load_labels
from helpers import REPO_ROOT, write_label_file

GOOD = {
    "clip_id": "c1",
    "video": "a.mp4",
    "label": "ghost_probing",
    "event": {
        "t_first_visible_s": 1.0,
        "t_event_s": 1.6,
        "t_end_s": 3.0,
        "actor": "pedestrian",
        "occluder": "parked_car",
        "side": "right",
        "outcome": "near_miss",
    },
    "context": {"light": "day", "weather": "clear", "scene": "urban", "road": "two_lane"},
    "group": "route_7",
    "split": "test",
    "notes": "child behind a van",
}


def test_documented_example_is_valid(tmp_path):
    text = (REPO_ROOT / "docs" / "labels.md").read_text()
    block = re.search(r"```json\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "labels.json"
    path.write_text(block)
    labels = load_labels(path)
    assert labels.problems == [] and labels.warnings == []
    assert {c.label for c in labels.clips} == {"ghost_probing", "cut_in", "other_hazard", "normal"}


def test_json_syntax_error_names_line_and_column(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"schema_version": 1,\n "clips": [\n  {"clip_id": "a" "video": "x.mp4"}\n]}\n')
    with pytest.raises(LabelFileError, match=r"labels.json line 3 column 19: JSON syntax error"):
        load_labels(path)


def test_jsonl_bad_line_loses_only_that_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    lines = [json.dumps(GOOD), '{"clip_id": "c2", "video": ', json.dumps(GOOD | {"clip_id": "c3"})]
    path.write_text("\n".join(lines) + "\n")
    labels = load_labels(path)
    assert [c.clip_id for c in labels.clips] == ["c1", "c3"]
    (problem,) = labels.problems
    assert problem.line == 2 and "JSON syntax error" in str(problem) and "labels.jsonl line 2" in str(problem)


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"label": "ghost"}, "label", "'ghost_probing', 'cut_in', 'other_hazard' or 'normal'"),
        ({"event": None}, "event", "required for label 'ghost_probing'"),
        ({"event": {"t_first_visible_s": 1.0}}, "event.t_event_s", "required for label 'ghost_probing'"),
        (
            {"event": {"t_first_visible_s": 3.0, "t_event_s": 2.0}},
            "event",
            "inverted: t_first_visible_s=3.0 > t_event_s=2.0",
        ),
        ({"event": {"t_first_visible_s": -1.0, "t_event_s": 2.0}}, "event", "t_first_visible_s is negative"),
        ({"context": {"light": "noon"}}, "context.light", "'day', 'night' or 'dusk'"),
        ({"split": "holdout"}, "split", "'train', 'val' or 'test'"),
        ({"video": 7}, "video", "valid string"),
        # JSON allows NaN/Infinity and a spreadsheet may quote numbers: a time is a finite JSON number or nothing.
        (
            {"event": {"t_first_visible_s": 1.0, "t_event_s": float("nan")}},
            "event.t_event_s",
            "finite number (got nan)",
        ),
        (
            {"event": {"t_first_visible_s": 1.0, "t_event_s": float("inf")}},
            "event.t_event_s",
            "finite number (got inf)",
        ),
        ({"event": {"t_first_visible_s": 1.0, "t_event_s": "2.5"}}, "event.t_event_s", "valid number (got '2.5')"),
        (
            {"event": {"t_first_visible_s": True, "t_event_s": 2.0}},
            "event.t_first_visible_s",
            "valid number (got True)",
        ),
    ],
)
def test_bad_clip_names_file_line_clip_and_field(tmp_path, change, field, words):
    path = write_label_file(tmp_path / "labels.json", [GOOD | {"clip_id": "ok"}, GOOD | change])
    labels = load_labels(path)
    assert [c.clip_id for c in labels.clips] == ["ok"]
    (problem,) = labels.problems
    assert (problem.clip_id, problem.field) == ("c1", field)
    line = path.read_text().splitlines().index('      "clip_id": "c1",') + 1
    assert problem.line == line
    assert words in problem.message
    assert str(problem).startswith(f"{path} line {line}, clip 'c1', field {field}: ")


def test_label_files_with_a_utf8_bom_read_whole(tmp_path):
    # Spreadsheet exports often start with a byte-order mark.
    as_json = tmp_path / "labels.json"
    as_json.write_bytes(b"\xef\xbb\xbf" + json.dumps({"schema_version": 1, "clips": [GOOD]}).encode())
    as_jsonl = tmp_path / "labels.jsonl"
    as_jsonl.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(GOOD | {"clip_id": c}) for c in ("c1", "c2")).encode())
    for path, clip_ids in ((as_json, ["c1"]), (as_jsonl, ["c1", "c2"])):
        labels = load_labels(path)
        assert labels.problems == [] and [c.clip_id for c in labels.clips] == clip_ids, path


def test_normal_clip_needs_no_event(tmp_path):
    path = write_label_file(tmp_path / "labels.json", [{"clip_id": "n", "video": "n.mp4", "label": "normal"}])
    assert load_labels(path).clips[0].event is None


def test_unknown_fields_warn_but_keep_clip(tmp_path):
    path = write_label_file(
        tmp_path / "labels.json", [GOOD | {"weather": "rain", "event": GOOD["event"] | {"speed": 3}}]
    )
    labels = load_labels(path)
    assert len(labels.clips) == 1 and not labels.problems
    assert any("field weather: unknown field" in w for w in labels.warnings)
    assert any("field event.speed: unknown field" in w for w in labels.warnings)


def test_duplicate_clip_id_rejects_later_copy(tmp_path):
    path = write_label_file(tmp_path / "labels.json", [GOOD, GOOD | {"video": "b.mp4"}])
    labels = load_labels(path)
    assert [c.video for c in labels.clips] == ["a.mp4"]
    (problem,) = labels.problems
    assert problem.field == "clip_id" and "duplicate clip_id (first defined at line 5)" in problem.message


def test_wrong_schema_version_and_shape(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"schema_version": 2, "clips": []}))
    with pytest.raises(LabelFileError, match="schema_version 2 is not supported"):
        load_labels(path)
    path.write_text(json.dumps({"videos": []}))
    with pytest.raises(LabelFileError, match="expected an object"):
        load_labels(path)
    with pytest.raises(LabelFileError, match="label file not found"):
        load_labels(tmp_path / "nope.json")


def test_a_misspelt_field_is_named_with_the_field_it_was_meant_to_be(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "clips": [
                    {"clip_id": "a", "video": "a.mp4", "lable": "normal"},
                    {
                        "clip_id": "b",
                        "video": "b.mp4",
                        "label": "ghost_probing",
                        "event": {"t_first_visible_s": 1.0, "t_evnt_s": 2.0},
                    },
                    {"clip_id": "c", "video": "c.mp4", "label": "normal", "contxt": {"light": "day"}},
                ],
            }
        )
    )
    labels = load_labels(path)
    assert [str(p).split(", ", 1)[1] for p in labels.problems] == [
        "clip 'a', field lable: unknown field 'lable' (did you mean 'label'?)",
        "clip 'b', field event.t_evnt_s: unknown field 't_evnt_s' (did you mean 't_event_s'?)",
    ]
    assert labels.warnings[0].endswith("clip 'c', field contxt: unknown field ignored (did you mean 'context'?)")
