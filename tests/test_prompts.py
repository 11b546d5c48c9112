"""Prompts: loading by name, the frame-timing message the original model was trained with."""

import pytest

from ghostprobe.prompts import frames_message, load_prompt, prompt_by_name


def test_default_prompt_is_chinese_with_definition():
    prompt = prompt_by_name("zh")
    assert (prompt.language, prompt.yes_word, prompt.no_word) == ("zh", "是", "否")
    assert "遮挡物" in prompt.question and " " not in prompt.question  # no YAML-folding spaces in Chinese text
    assert prompt_by_name("en").yes_word == "Yes"


def test_unknown_prompt_and_missing_field_are_named():
    with pytest.raises(ValueError, match=r"no prompt 'fr'.*known: en, zh, zh_brief"):
        prompt_by_name("fr")
    with pytest.raises(ValueError, match="lacks field"):
        load_prompt({"name": "x", "language": "en"})


def test_frames_message_matches_original_wording():
    assert frames_message([0.0, 0.625, 1.25], "en") == "The video contains 3 frames sampled at 0.0, 0.6, 1.2 seconds."
    assert frames_message([0.0, 1.5], "zh") == "视频包含2帧，采样时间为 0.0, 1.5 秒。"
