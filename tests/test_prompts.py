"""Prompts: loading by name, the frame-timing message the original model was trained with."""

import numpy as np
import pytest

from ghostprobe.models.video_llama.prompt_format import prompt_segments
from ghostprobe.prompts import Prompt, after_frames_message, frames_message, load_prompt, prompt_by_name


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


# Each backend's frames message on clips whose times round differently in each format (binary ties, hundredths, an
# hour in, %g's six digits). The texts are what the code before the message had one home (commit 5c9d31f: three
# copies) gave for these clips, run there: the move changed no model's input.
CLIP_TIMES = {
    "halves": (0.0, 0.625, 1.25, 1.875),
    "ties": (0.05, 0.15, 0.25, 2.675, 10.45),
    "long": (12.0, 100.5, 3600.25, 123456.789),
}
ORIGINAL_TIMES = {
    "halves": "0.0, 0.6, 1.2, 1.9",
    "ties": "0.1, 0.1, 0.2, 2.7, 10.4",
    "long": "12.0, 100.5, 3600.2, 123456.8",
}  # Video-LLaMA-2 and the HF-native models
HUNDREDTHS_TIMES = {
    "halves": "0, 0.62, 1.25, 1.88",
    "ties": "0.05, 0.15, 0.25, 2.67, 10.45",
    "long": "12, 100.5, 3600.25, 123457",
}  # the API baselines
EN = Prompt(
    name="en_short",
    language="en",
    system="You review dashcam videos.",
    question="Ghost probing? Yes or No.",
    when_question="When?",
    yes_word="Yes",
    no_word="No",
)
ZH = Prompt(
    name="zh_short",
    language="zh",
    system="你审阅行车记录仪视频。",
    question="有鬼探头吗？",
    when_question="第几秒？",
    yes_word="是",
    no_word="否",
)


@pytest.mark.parametrize("clip", list(CLIP_TIMES))
def test_frames_message_writes_each_backends_times_as_before(clip):
    times, n = CLIP_TIMES[clip], len(CLIP_TIMES[clip])
    assert frames_message(times, "en") == f"The video contains {n} frames sampled at {ORIGINAL_TIMES[clip]} seconds."
    assert frames_message(times, "zh") == f"视频包含{n}帧，采样时间为 {ORIGINAL_TIMES[clip]} 秒。"
    assert (
        frames_message(times, "en", "hundredths")
        == f"The video contains {n} frames sampled at {HUNDREDTHS_TIMES[clip]} seconds."
    )
    assert (
        after_frames_message(ZH.question, times, "zh", "hundredths")
        == f"视频包含{n}帧，采样时间为 {HUNDREDTHS_TIMES[clip]} 秒。\n有鬼探头吗？"
    )
    with pytest.raises(ValueError, match="time_format must be one of original, hundredths"):
        frames_message(times, "en", "tenths")


def test_video_llama_prompt_text_is_unchanged():
    before, after = prompt_segments("original", ZH, CLIP_TIMES["ties"], ZH.question)
    assert f"{before}<ImageHere>{after}" == (
        "[INST] <<SYS>>\n你审阅行车记录仪视频。\n<</SYS>>\n\n<Video><ImageHere></Video> The video contains 5 frames "
        "sampled at 0.1, 0.1, 0.2, 2.7, 10.4 seconds.  有鬼探头吗？ [/INST]"
    )
    before, after = prompt_segments("localized_frames", ZH, CLIP_TIMES["long"], ZH.question)
    assert f"{before}<ImageHere>{after}" == (
        "[INST] <<SYS>>\n你审阅行车记录仪视频。\n<</SYS>>\n\n<Video><ImageHere></Video> 视频包含4帧，采样时间为 12.0, "
        "100.5, 3600.2, 123456.8 秒。  有鬼探头吗？ [/INST]"
    )
    before, after = prompt_segments("localized_frames", EN, CLIP_TIMES["halves"], EN.question)
    assert f"{before}<ImageHere>{after}" == (
        "[INST] <<SYS>>\nYou review dashcam videos.\n<</SYS>>\n\n<Video><ImageHere></Video> The video contains 4 "
        "frames sampled at 0.0, 0.6, 1.2, 1.9 seconds.  Ghost probing? Yes or No. [/INST]"
    )


def test_original_time_format_is_the_one_decimal_format_hf_native_models_were_sent():
    # The HF-native backend wrote f"{t:.1f}" before it shared Video-LLaMA's str(round(t, 1)): the two agree on every
    # time a clip or a recording can have (they part only from 1e16 s, where repr switches to exponents).
    rng = np.random.default_rng(0)
    times = [
        *rng.uniform(0, 100_000, 20_000),
        *(k / 40 for k in range(4_000)),
        *(k / 29.97 for k in range(3_000)),
        *np.float32(rng.uniform(0, 600, 2_000)),
    ]
    assert (
        frames_message(times, "en")
        == f"The video contains {len(times)} frames sampled at {', '.join(f'{t:.1f}' for t in times)} seconds."
    )
