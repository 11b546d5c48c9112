"""Video-LLaMA processor on the tiny checkpoint: pixels, the LLaMA-2 chat prompt, left padding, answer-only labels."""

import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml
from transformers import LlamaTokenizer

from ghostprobe.config import CONF_DIR
from ghostprobe.models.base import ClipInput
from ghostprobe.models.video_llama.processing import (
    CLIP_MEAN,
    CLIP_STD,
    IGNORE_INDEX,
    PROCESSOR_CONFIG_NAME,
    AnswerChoice,
    VideoLlamaProcessor,
)
from ghostprobe.models.video_llama.tiny import build_tiny_checkpoint, tiny_video_tokenizer
from ghostprobe.prompts import load_prompt

PROMPT_NAMES = sorted(p.stem for p in (CONF_DIR / "prompt").glob("*.yaml"))


def _prompt(name):
    return load_prompt(yaml.safe_load((CONF_DIR / "prompt" / f"{name}.yaml").read_text(encoding="utf-8")))


def _clip(clip_id, timestamps_s, size=(40, 60), seed=0):
    frames = np.random.default_rng(seed).integers(0, 256, (len(timestamps_s), *size, 3), dtype=np.uint8)
    return ClipInput(clip_id, frames, tuple(timestamps_s))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny_video_llama"))


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return VideoLlamaProcessor.from_pretrained(tiny_dir)


def test_pixels_are_resized_then_normalised_with_the_clip_statistics(processor):
    colour = np.array([255, 0, 128], np.uint8)
    frames = np.broadcast_to(colour, (2, 50, 70, 3)).copy()  # any size: squeezed to 28 x 28
    pixels = processor.pixel_values(frames)
    assert pixels.shape == (2, 3, 28, 28) and pixels.dtype == torch.float32
    expected = [(c / 255 - m) / s for c, m, s in zip(colour, CLIP_MEAN, CLIP_STD, strict=True)]
    for channel in range(3):
        torch.testing.assert_close(pixels[:, channel], torch.full((2, 28, 28), expected[channel]), atol=1e-4, rtol=0)

    # Frames already at the model size are not resampled: every pixel follows the formula exactly.
    ramp = np.arange(28 * 28 * 3, dtype=np.int64).reshape(1, 28, 28, 3) % 256
    pixels = processor.pixel_values(ramp.astype(np.uint8))
    by_hand = (
        torch.from_numpy(ramp[0]).permute(2, 0, 1) / 255 - torch.tensor(CLIP_MEAN)[:, None, None]
    ) / torch.tensor(CLIP_STD)[:, None, None]
    torch.testing.assert_close(pixels[0], by_hand.float(), atol=1e-6, rtol=0)


def test_pad_mode_keeps_the_aspect_ratio_with_black_bars(tiny_dir):
    padded = VideoLlamaProcessor.from_pretrained(tiny_dir, resize="pad")
    white_wide = np.full((1, 20, 80, 3), 255, np.uint8)
    pixels = padded.pixel_values(white_wide)
    black = torch.tensor([-m / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)])
    white = torch.tensor([(1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)])
    torch.testing.assert_close(pixels[0, :, 0, 0], black)  # top bar
    torch.testing.assert_close(pixels[0, :, 14, 14], white, atol=1e-4, rtol=0)  # the frame, centred


@pytest.mark.parametrize("name", PROMPT_NAMES)
def test_prompt_is_the_original_chat_layout_for_every_prompt(processor, name):
    prompt = _prompt(name)
    timestamps = (0.0, 1.5, 3.04)
    # The original's frames message is English whatever the prompt's language, ends with a space, and Chat.ask
    # joins the question with another one.
    assert processor.prompt_format == "original"
    assert processor.prompt_text(prompt, timestamps) == (
        "[INST] <<SYS>>\n" + prompt.system + "\n<</SYS>>\n\n<Video><ImageHere></Video> "
        "The video contains 3 frames sampled at 0.0, 1.5, 3.0 seconds.  " + prompt.question + " [/INST]"
    )
    assert processor.prompt_text(prompt, timestamps, "when").endswith(f"seconds.  {prompt.when_question} [/INST]")

    ids = processor([_clip("c", timestamps)], prompt)["input_ids"][0].tolist()
    assert ids[0] == processor.tokenizer.bos_token_id and ids.count(processor.tokenizer.bos_token_id) == 1
    first_video = ids.index(processor.video_token_id)
    assert ids[first_video : first_video + 4] == [processor.video_token_id] * 4  # the tiny preset's 4 video tokens
    assert ids.count(processor.video_token_id) == 4
    # The text after the video is tokenized on its own, so it starts with a word-start piece ("▁</" in LLaMA-2).
    tokens = processor.tokenizer.convert_ids_to_tokens(ids)
    assert tokens[first_video + 4].startswith("▁") and tokens[first_video - 1] != "▁"
    # The tiny tokenizer covers the conf prompts with learned pieces: no <unk>, almost no byte fallback.
    assert processor.tokenizer.unk_token_id not in ids
    assert sum(token.startswith("<0x") for token in tokens) <= 0.05 * len(tokens)


def test_localized_frames_format_writes_the_frames_message_in_the_prompt_language(tiny_dir):
    localized = VideoLlamaProcessor.from_pretrained(tiny_dir, prompt_format="localized_frames")
    zh, en = _prompt("zh"), _prompt("en")
    assert "</Video> 视频包含2帧，采样时间为 0.0, 2.5 秒。  请判断" in localized.prompt_text(zh, (0.0, 2.5))
    assert "</Video> The video contains 2 frames sampled at 0.0, 2.5 seconds.  Does" in localized.prompt_text(
        en, (0.0, 2.5)
    )
    with pytest.raises(ValueError, match="prompt_format must be one of"):
        VideoLlamaProcessor.from_pretrained(tiny_dir, prompt_format="chinese")


def test_a_prompt_that_contains_the_video_placeholder_is_refused(processor):
    prompt = dataclasses.replace(_prompt("en"), question="Is <ImageHere> dangerous?")
    with pytest.raises(ValueError, match="the question contains <ImageHere>"):
        processor([_clip("c", (0.0, 1.0))], prompt)


def test_batches_are_left_padded_and_positions_count_real_tokens(processor):
    prompt = _prompt("en")
    short, long = _clip("short", (0.0, 1.0, 2.0)), _clip("long", (0.0, 12.5, 25.0), seed=1)
    batch = processor([short, long], prompt)
    lengths = batch["attention_mask"].sum(1).tolist()
    assert lengths[0] != lengths[1]
    width = batch["input_ids"].shape[1]
    for row, clip in enumerate([short, long]):
        alone = processor([clip], prompt)
        pad = width - lengths[row]
        assert batch["attention_mask"][row, :pad].sum() == 0 and batch["attention_mask"][row, pad:].all()
        assert (batch["input_ids"][row, :pad] == processor.pad_id).all()
        assert torch.equal(batch["input_ids"][row, pad:], alone["input_ids"][0])  # the prompt ends at the last column
        assert batch["position_ids"][row, pad:].tolist() == list(range(lengths[row]))
        torch.testing.assert_close(batch["pixel_values"][row], alone["pixel_values"][0])
    assert batch["pixel_values"].shape == (2, 3, 3, 28, 28)


def test_labels_supervise_only_the_answer_tokens_and_eos(processor):
    prompt = _prompt("zh")
    answers = ["是", "否，视频中没有鬼探头。"]
    batch = processor([_clip("a", (0.0, 1.0, 2.0)), _clip("b", (0.0, 12.5, 25.0))], prompt, answers=answers)
    eos = processor.tokenizer.eos_token_id
    for row, answer in enumerate(answers):
        supervised = batch["labels"][row] != IGNORE_INDEX
        expected = processor.answer_ids(answer) + [eos]
        assert supervised.sum() == len(expected) and supervised[-len(expected) :].all()  # only the tail
        assert batch["labels"][row, supervised].tolist() == expected
        assert batch["input_ids"][row, -len(expected) :].tolist() == expected  # labels are the inputs, unshifted
        assert processor.decode(expected) == answer
    assert "labels" not in processor([_clip("a", (0.0, 1.0, 2.0))], prompt)


def test_answer_tokens_come_from_the_tokenizer(tiny_dir, processor):
    zh, en = processor.answer_choice("是", "否"), processor.answer_choice("Yes", "No")
    tokens = processor.tokenizer.convert_ids_to_tokens
    # LLaMA-style: a word-start piece for English words, a bare "▁" before a Chinese character.
    assert tokens([en.yes_id, en.no_id]) == ["▁Yes", "▁No"] and en.prefix_ids == ()
    assert tokens(list(zh.prefix_ids)) == ["▁"] and tokens([zh.yes_id, zh.no_id]) == ["是", "否"]

    # The same pieces with the ids of 是 and 否 swapped: the choice follows the tokenizer.
    model = json.loads(processor.tokenizer.backend_tokenizer.to_str())["model"]
    vocab = dict(model["vocab"])
    vocab["是"], vocab["否"] = vocab["否"], vocab["是"]
    swapped = LlamaTokenizer(vocab=vocab, merges=[tuple(m) for m in model["merges"]], legacy=False)
    swapped.add_tokens(["<ImageHere>"], special_tokens=True)
    other = VideoLlamaProcessor(swapped, image_size=28, num_video_query_tokens=4, max_frames=8)
    assert other.answer_choice("是", "否") == AnswerChoice(zh.prefix_ids, yes_id=zh.no_id, no_id=zh.yes_id)

    with pytest.raises(ValueError, match="no single token tells them apart"):
        processor.answer_choice("No", "No way")
    with pytest.warns(UserWarning, match="scoring uses the first"):
        processor.answer_choice("Yes indeed", "No")


def test_bad_clips_are_named_errors(processor):
    prompt = _prompt("zh")
    with pytest.raises(ValueError, match=r"clip 'long'.*9 frames.*max_frames=8"):
        processor([_clip("long", [float(t) for t in range(9)])], prompt)
    with pytest.raises(ValueError, match="same number of frames"):
        processor([_clip("a", (0.0, 1.0)), _clip("b", (0.0, 1.0, 2.0))], prompt)
    with pytest.raises(ValueError, match="clip 'x': 3 frames but 2 timestamps"):
        processor([ClipInput("x", np.zeros((3, 28, 28, 3), np.uint8), (0.0, 1.0))], prompt)
    with pytest.raises(ValueError, match="uint8 RGB"):
        processor.pixel_values(np.zeros((3, 28, 28, 3), np.float32), "f")


def test_save_and_load_round_trip_and_converter_folders_without_processor_config(tmp_path, tiny_dir, processor):
    processor.save_pretrained(tmp_path / "copy")
    again = VideoLlamaProcessor.from_pretrained(tmp_path / "copy")
    assert again.to_dict() == processor.to_dict()
    clip = _clip("c", (0.0, 1.0, 2.0))
    assert torch.equal(again([clip], _prompt("zh"))["input_ids"], processor([clip], _prompt("zh"))["input_ids"])

    # The converter writes no processor_config.json: sizes then come from the model's config.json.
    (tmp_path / "copy" / PROCESSOR_CONFIG_NAME).unlink()
    (tmp_path / "copy" / "config.json").write_text((tiny_dir / "config.json").read_text())
    derived = VideoLlamaProcessor.from_pretrained(tmp_path / "copy")
    assert (derived.image_size, derived.num_video_query_tokens, derived.max_frames) == (28, 4, 8)
    assert json.loads((tiny_dir / PROCESSOR_CONFIG_NAME).read_text())["image_mean"] == list(CLIP_MEAN)


def test_tiny_tokenizer_is_deterministic():
    first, second = tiny_video_tokenizer(), tiny_video_tokenizer()
    assert first.get_vocab() == second.get_vocab() and len(first) == 1025
    assert first.convert_tokens_to_ids("<ImageHere>") == 1024  # == the tiny preset's video_token_index
