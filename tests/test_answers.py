"""Answer parsing on realistic zh/en model answers: what each answer means to a person reading it."""

import pytest

from ghostprobe.answers import parse_event_time_s, parse_yes_no, read_answer

YES_NO_CASES = [
    # Chinese, leading verdict
    ("是", True),
    ("是。", True),
    ("是的，视频中出现了鬼探头", True),
    ("是的。一名行人从停放的白色轿车后突然冲出。", True),
    ("存在鬼探头现象。", True),
    ("有，一名骑电动车的人从路边车辆后面窜出。", True),
    ("对，这是鬼探头。", True),
    ("否。", False),
    ("否，视频中的行人一直处于可见状态。", False),
    ("不是", False),
    ("不是，这是正常的行人过马路。", False),
    ("没有发现鬼探头现象", False),
    ("没有。", False),
    ("无", False),
    ("不存在鬼探头", False),
    ("不存在。", False),
    ("并没有出现鬼探头。", False),
    # Chinese, verdict inside a sentence
    ("视频中出现了鬼探头。", True),
    ("视频中没有鬼探头。", False),
    ("该视频未出现鬼探头情况，行人始终在视野中。", False),
    ("这不是鬼探头，而是正常的车辆并线。", False),
    ("这是一个典型的鬼探头事件。", True),
    ("视频里行人突然从停着的车后面冲出来，属于鬼探头。", True),
    ("根据画面，一名行人非常突然地冲出。", True),
    ("鬼探头：否", False),
    ("鬼探头：是", True),
    ("是否存在鬼探头：否", False),
    ("是否存在鬼探头：是", True),
    ("答案：是", True),
    ("答案是否定的。", False),
    ("结论：不存在鬼探头。", False),
    ("有可能是鬼探头。", True),
    ("无法判断。", None),
    ("无法确定是否存在鬼探头。", None),
    ("不确定", None),
    ("画面太暗，看不清。", None),
    # English, leading verdict
    ("Yes", True),
    ("YES!", True),
    ("Yes, a pedestrian suddenly emerges from behind the parked van.", True),
    ("No.", False),
    ("no", False),
    ("Nope, the cyclist is visible the whole time.", False),
    ("No ghost probing is observed in this clip.", False),
    ("**Answer: yes**", True),
    ("**Answer:** No", False),
    ("Ｙｅｓ。", True),
    ("Absolutely not.", False),
    ("肯定", True),
    # English, verdict inside a sentence
    ("This is not a ghost probing event.", False),
    ("There's no ghost probing in this video.", False),
    ("I don't see any ghost probing here.", False),
    ("I can't see any pedestrian darting out, so there is no ghost probing.", False),
    ("Based on the frames, yes, there is a ghost probing event.", True),
    ("A cyclist suddenly emerges from behind a parked car at about 2 seconds.", True),
    ("The pedestrian was visible the whole time, so this is not ghost probing.", False),
    ("Ghost probing: No", False),
    ("Ghost probing occurs at 3.2 s when a child runs out.", True),
    ("Ghost probing is not present.", False),
    (
        "Let me analyze the frames to determine whether ghost probing occurs. The pedestrian is visible from the "
        "first frame and walks slowly. Final answer: No",
        False,
    ),
    ("The answer is yes.", True),
    ("I cannot determine this from the frames provided.", None),
    ("It is unclear from these low-resolution frames.", None),
    ("Based on the frames, I cannot determine whether ghost probing occurred.", None),
    ("Sorry, I can't help with that.", None),
    ("The video shows a road at night.", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize("text,expected", YES_NO_CASES)
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) is expected


EVENT_TIME_CASES = [
    ("at 3.2 seconds", 3.2),
    ("The pedestrian emerges at 3.2 seconds.", 3.2),
    ("3.5s", 3.5),
    ("around 4 s", 4.0),
    ("At about 4 sec.", 4.0),
    ("约在第4秒", 4.0),
    ("在2.5秒时，行人从车后冲出。", 2.5),
    ("第三秒", 3.0),
    ("大约在第十二秒左右", 12.0),
    ("三秒半", 3.5),
    ("00:03", 3.0),
    ("At 00:03.5 a cyclist appears.", 3.5),
    ("0:01:05", 65.0),
    ("3-4秒之间", 3.5),
    ("between 3 and 4 seconds", 3.5),
    ("between 2.0s and 3.0s", 2.5),
    ("Around the 5-second mark.", 5.0),
    ("At frame 12 (t = 4.0 s)", 4.0),
    ("3200 ms", 3.2),
    ("t=2.8", 2.8),
    ("**4.0 s**", 4.0),
    ("2.5", 2.5),
    ("Ghost probing occurs at 1.5 s; the clip is 10 s long.", 1.5),
    ("无", None),
    ("None", None),
    ("No ghost probing occurs in this clip.", None),
    ("第5帧", None),
    ("I cannot determine the time.", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize("text,expected", EVENT_TIME_CASES)
def test_parse_event_time_s(text, expected):
    result = parse_event_time_s(text)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, question, expected",
    [
        ("No ghost probing in this 10 s clip", "when", (False, None)),
        ("约在第4秒", "when", (True, 4.0)),
        ("无", "when", (False, None)),
        ("I cannot tell", "when", (None, None)),
        ("Yes, at 3.5 seconds", "detect", (True, None)),
    ],
)
def test_one_reader_for_every_backend(text, question, expected):
    assert read_answer(text, question) == expected
