"""`kind: hf_native` on tiny random Qwen2.5-VL and LLaVA-OneVision models saved with their processors, built offline.

The tokenizer is a small byte-level BPE trained here (so "Yes" and " Yes" can be different tokens, as in Qwen's) with
the special tokens the two chat templates and processors need. transformers' video processors need torchvision, which
cannot load next to the CPU torch wheel: where it cannot, the `TorchOnly*VideoProcessor` stand-ins below turn frames
into pixel tensors of the right shapes, and the rest of the processor (chat template, placeholder expansion, frame
metadata, left padding) is the library's own. Where torchvision loads, the real video processors are used.
"""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    BatchFeature,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
)
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import make_batched_metadata

from ghostprobe.answers import read_answer
from ghostprobe.config import CONF_DIR
from ghostprobe.models import hf_native
from ghostprobe.models.base import ClipInput, build_model
from ghostprobe.prompts import frames_message, load_prompt

try:
    import torchvision  # noqa: F401

    HAS_TORCHVISION = True
except Exception:  # absent, or a CUDA build that cannot load against the CPU torch
    HAS_TORCHVISION = False

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<image>",
    "<video>",
]  # Qwen2.5-VL's, then LLaVA-OneVision's placeholders
PATCH, MERGE, TEMPORAL = 4, 2, 2  # Qwen2.5-VL: 32x32 px frames -> 8x8 patches -> 16 tokens per 2 frames
SIZE = 16  # LLaVA-OneVision: frames resized to 16x16 px -> 4x4 SigLIP patches -> pooled to 2x2 tokens per frame
CONF = {"kind": "hf_native", "dtype": "fp32", "device": "cpu", "batch_size": 4, "max_new_tokens": 6}


def chat_template(video_placeholder: str) -> str:
    """A chat template written for these tests in the shape of Qwen's: system, user (video, text), assistant."""
    return (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content is string %}{{ m.content }}{% else %}"
        "{% for c in m.content %}{% if c.type == 'video' %}"
        + video_placeholder
        + "{% elif c.type == 'text' %}{{ c.text }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    # A fixed corpus, so the merges never change: " No", " 是", " 否" become tokens, " Yes" stays "Ġ" + "Yes".
    corpus = [
        "是",
        "否",
        "Yes. No, No! 是 否 是 否. (Yes)",
        "鬼探头 ghost probing 3.5 seconds 秒",
        "The video contains 4 frames sampled at 0.0, 0.5 seconds.",
        "视频包含4帧，采样时间为 0.0, 0.5 秒。",
    ] * 3
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=500,
            special_tokens=SPECIAL,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL[1:]})
    return tokenizer


def as_float_frames(video) -> torch.Tensor:
    return torch.as_tensor(np.asarray(video)).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [T, C, H, W] in [-1, 1]


class TorchOnlyQwenVideoProcessor(VideoProcessorMixin):
    """Qwen2VLVideoProcessor's outputs for frames already a multiple of patch*merge pixels, without torchvision:
    same shapes, grid and metadata; the patch order inside a row differs, which random weights cannot tell."""

    model_input_names = ["pixel_values_videos", "video_grid_thw"]
    patch_size, merge_size, temporal_patch_size = PATCH, MERGE, TEMPORAL

    def preprocess(self, videos, video_metadata=None, return_metadata=False, **_):
        rows, grids = [], []
        # processor(videos=[clip, ...]) gives [T, H, W, C] arrays; apply_chat_template nests them per conversation
        videos = [v for video in videos for v in (video if np.asarray(video).ndim == 5 else [video])]
        for video in videos:
            frames = as_float_frames(video)
            frames = torch.cat([frames, frames[-1:].expand(-len(frames) % TEMPORAL, -1, -1, -1)])
            t, c, h, w = frames.shape
            grid = (t // TEMPORAL, h // PATCH, w // PATCH)
            patches = frames.reshape(grid[0], TEMPORAL, c, grid[1], PATCH, grid[2], PATCH)
            rows.append(patches.permute(0, 3, 5, 2, 1, 4, 6).reshape(grid[0] * grid[1] * grid[2], -1))
            grids.append(grid)
        data = {"pixel_values_videos": torch.cat(rows), "video_grid_thw": torch.tensor(grids)}
        if return_metadata:
            data["video_metadata"] = make_batched_metadata(videos, video_metadata=video_metadata)
        return BatchFeature(data, skip_tensor_conversion=["video_metadata"])


class TorchOnlyLlavaVideoProcessor(VideoProcessorMixin):
    """LlavaOnevisionVideoProcessor's outputs without torchvision: frames resized to SIZE x SIZE, stacked."""

    model_input_names = ["pixel_values_videos"]

    def preprocess(self, videos, **_):
        frames = [
            torch.nn.functional.interpolate(as_float_frames(v), size=(SIZE, SIZE), mode="bilinear") for v in videos
        ]
        return BatchFeature({"pixel_values_videos": torch.stack(frames)})


def with_video_stand_in(processor_class):
    class Processor(processor_class):
        def check_argument_for_proper_class(self, argument_name, argument):
            # the library's check looks video processors up in a registry that is empty without torchvision
            if argument_name == "video_processor":
                return type(argument)
            return super().check_argument_for_proper_class(argument_name, argument)

    return Processor


def tiny_qwen2_5_vl(tokenizer, ids):
    """A random Qwen2.5-VL with 2 text layers of width 32 and 2 vision blocks of width 16, and its processor."""
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 1024,
            # head_dim 16: the 8 rotary frequencies split into time, height and width sections
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "patch_size": PATCH,
            "spatial_merge_size": MERGE,
            "temporal_patch_size": TEMPORAL,
            "window_size": 16,
            "out_hidden_size": 32,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    size = {"shortest_edge": 16 * 16, "longest_edge": 64 * 64}
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=PATCH, merge_size=MERGE, temporal_patch_size=TEMPORAL, size=size
    )
    template = chat_template("<|vision_start|><|video_pad|><|vision_end|>")
    if HAS_TORCHVISION:
        from transformers import Qwen2VLVideoProcessor

        video_processor = Qwen2VLVideoProcessor(
            patch_size=PATCH, merge_size=MERGE, temporal_patch_size=TEMPORAL, size=size, cap_pixels_per_frame=True
        )
        processor = Qwen2_5_VLProcessor(image_processor, tokenizer, video_processor, chat_template=template)
    else:
        processor = with_video_stand_in(Qwen2_5_VLProcessor)(
            image_processor, tokenizer, TorchOnlyQwenVideoProcessor(), chat_template=template
        )
    return Qwen2_5_VLForConditionalGeneration(config), processor


def tiny_llava_onevision(tokenizer, ids):
    """A random LLaVA-OneVision: a 1-block SigLIP of width 16 on 16 px frames, a 2-layer Qwen2 of width 32."""
    config = LlavaOnevisionConfig(
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": SIZE,
            "patch_size": 4,
            "vision_use_head": False,
        },
        image_token_id=ids["<image>"],
        video_token_id=ids["<video>"],
        image_grid_pinpoints=[[SIZE, SIZE]],
    )
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": SIZE, "width": SIZE}, image_grid_pinpoints=[[SIZE, SIZE]]
    )
    settings = {
        "num_image_tokens": (SIZE // 4) ** 2,
        "vision_feature_select_strategy": "full",
        "chat_template": chat_template("<video>"),
    }
    if HAS_TORCHVISION:
        from transformers import LlavaOnevisionVideoProcessor

        video_processor = LlavaOnevisionVideoProcessor(size={"height": SIZE, "width": SIZE})
        processor = LlavaOnevisionProcessor(image_processor, tokenizer, video_processor, **settings)
    else:
        processor = with_video_stand_in(LlavaOnevisionProcessor)(
            image_processor, tokenizer, TorchOnlyLlavaVideoProcessor(), **settings
        )
    return LlavaOnevisionForConditionalGeneration(config), processor


ARCHITECTURES = {"qwen2_5_vl": tiny_qwen2_5_vl, "llava_onevision": tiny_llava_onevision}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> (folder, processor): each tiny model saved with its processor once per module, on first use."""
    built = {}

    def get(name):
        if name not in built:
            tokenizer = tiny_tokenizer()
            torch.manual_seed(0)
            model, processor = ARCHITECTURES[name](tokenizer, {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL})
            folder = tmp_path_factory.mktemp(name)
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            built[name] = folder, processor
        return built[name]

    return get


@pytest.fixture
def load(request, folders, monkeypatch):
    """load(**overrides) -> build_model of a tiny folder (Qwen2.5-VL unless parametrized indirectly); without
    torchvision, AutoProcessor serves the processor with the stand-in video processor."""
    folder, processor = folders(getattr(request, "param", "qwen2_5_vl"))
    if not HAS_TORCHVISION:

        class Served:
            @staticmethod
            def from_pretrained(path):
                assert Path(path) == folder
                return processor

        monkeypatch.setattr(hf_native, "AutoProcessor", Served)
    built = lambda **overrides: build_model({**CONF, "path": str(folder), **overrides})  # noqa: E731
    built.processor = processor
    return built


def clip(clip_id, num_frames=4, start_s=0.0, seed=0, size=(32, 32)):
    frames = np.random.default_rng(seed).integers(0, 256, (num_frames, *size, 3), dtype=np.uint8)
    return ClipInput(clip_id, frames, tuple(start_s + 0.5 * i for i in range(num_frames)))


def prompt(language):
    """The shipped zh_brief prompt, or the shipped en prompt with short texts (long prompts only cost test time)."""
    if language == "zh":
        return load_prompt(yaml.safe_load((CONF_DIR / "prompt" / "zh_brief.yaml").read_text()))
    shipped = load_prompt(yaml.safe_load((CONF_DIR / "prompt" / "en.yaml").read_text()))
    return dataclasses.replace(
        shipped,
        system="You review dashcam videos.",
        question='Is there ghost probing? Answer "Yes" or "No".',
        when_question="At what second does it happen?",
    )


CLIPS = [
    clip("a", seed=1),
    clip("b", start_s=12.5, seed=2),
    clip("c", num_frames=5, seed=3),
    clip("d", size=(24, 40), seed=4),
]


@pytest.mark.parametrize("load", list(ARCHITECTURES), indirect=True)
def test_score_batched_equals_unbatched(load):
    model = load()
    batched = model.score(CLIPS, prompt("zh"))
    assert [o.clip_id for o in batched] == ["a", "b", "c", "d"]
    assert all(0.0 <= o.p_ghost_probing <= 1.0 for o in batched)
    assert batched[0].tokens_in != batched[1].tokens_in  # same frames, longer times text: the batch was padded
    model.batch_size = 1
    single = model.score(CLIPS, prompt("zh"))
    np.testing.assert_allclose([o.p_ghost_probing for o in batched], [o.p_ghost_probing for o in single], atol=1e-5)
    assert all(o.latency_s > 0 and 0 < o.extra["answer_token_mass"] <= 1 for o in single)


# The answer tokens by their byte-level spellings: " Yes" has no token of its own (its first token is a bare space,
# which score() must skip), " No", 是, " 是", 否 and " 否" are single tokens.
@pytest.mark.parametrize("load", list(ARCHITECTURES), indirect=True)
@pytest.mark.parametrize(
    "prompt_name,yes,no", [("en", ["Yes"], ["No", "ĠNo"]), ("zh", ["æĺ¯", "Ġæĺ¯"], ["åĲ¦", "ĠåĲ¦"])]
)
def test_score_is_the_softmax_of_the_answer_token_logits(load, prompt_name, yes, no):
    model, processor, p = load(), load.processor, prompt(prompt_name)
    x = clip("x", seed=5)
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": p.system}]},
        {
            "role": "user",
            "content": [
                {"type": "video"},
                {"type": "text", "text": f"{frames_message(x.timestamps_s, p.language)}\n{p.question}"},
            ],
        },
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    inputs = processor(
        text=[text],
        videos=[x.frames],
        return_tensors="pt",
        videos_kwargs={
            "do_sample_frames": False,
            "video_metadata": [{"fps": 2.0, "total_num_frames": 4, "frames_indices": [0, 1, 2, 3]}],
        },
    )
    with torch.no_grad():
        logits = model.model(**inputs).logits[0, -1]
    assert processor.tokenizer.tokenize(" Yes") == ["Ġ", "Yes"]
    yes_mass = torch.exp(logits[torch.tensor(processor.tokenizer.convert_tokens_to_ids(yes))]).sum()
    no_mass = torch.exp(logits[torch.tensor(processor.tokenizer.convert_tokens_to_ids(no))]).sum()
    expected = float(yes_mass / (yes_mass + no_mass))
    assert model.score([x], p)[0].p_ghost_probing == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "load,question",
    [("qwen2_5_vl", "detect"), ("qwen2_5_vl", "when"), ("llava_onevision", "detect")],
    indirect=["load"],
)
def test_generate_answers_and_parses(load, question, monkeypatch):
    model = load()
    outputs = model.generate(CLIPS[:2], prompt("en"), question=question)
    model.batch_size = 1
    single = model.generate(CLIPS[:2], prompt("en"), question=question)
    assert [o.answer for o in outputs] == [o.answer for o in single]  # greedy and left-padded: batch-independent
    for out in outputs:
        assert isinstance(out.answer, str) and 1 <= out.tokens_out <= 6 and out.tokens_in > 0 and out.latency_s > 0
        # random weights answer gibberish: only the plumbing is checked here
        assert (out.parsed_answer, out.event_time_s) == read_answer(out.answer, question)
    if question == "when":  # the answer reader every backend shares: a "no" naming the clip's length has no time
        # undone after the test: without torchvision the tokenizer is the one every test of the module shares
        monkeypatch.setattr(model.tokenizer, "decode", lambda *args, **kwargs: "No ghost probing in this 10 s clip")
        assert [(o.parsed_answer, o.event_time_s) for o in model.generate(CLIPS[:1], prompt("en"), "when")] == [
            (False, None)
        ]


def test_non_finite_logits_give_nan_and_a_warning(load):
    model = load()
    model.model.lm_head.weight.data.fill_(float("nan"))
    with pytest.warns(UserWarning, match="non-finite logits"):
        scored = model.score(CLIPS[:2], prompt("en"))
    with pytest.warns(UserWarning, match="non-finite logits"):
        answered = model.generate(CLIPS[:2], prompt("en"))
    assert all(np.isnan(o.p_ghost_probing) and "non-finite" in o.extra["error"] for o in scored)
    assert all(o.answer is None and o.parsed_answer is None and "non-finite" in o.extra["error"] for o in answered)
    model.nan_guard = False
    with pytest.raises(FloatingPointError, match="non-finite logits"):
        model.score(CLIPS[:2], prompt("en"))


def test_a_bad_clip_does_not_stop_the_others(load):
    model = load()
    good = model.score(CLIPS[:2], prompt("en"))

    class FailsOnBlackFrames:  # the model's processor, except that it chokes on all-black clips
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, videos, **kwargs):
            if any(video.max() == 0 for video in videos):
                raise RuntimeError("corrupt frames")
            return self.inner(videos=videos, **kwargs)

    model.processor = FailsOnBlackFrames(model.processor)
    black = ClipInput("black", np.zeros_like(CLIPS[0].frames), CLIPS[0].timestamps_s)  # fails in the batch
    mismatched = ClipInput("mismatched", CLIPS[0].frames, (0.0, 0.5))  # 4 frames, 2 timestamps: fails before it
    with pytest.warns(UserWarning) as warned:
        out = model.score([CLIPS[0], black, mismatched, CLIPS[1]], prompt("en"))
    assert "corrupt frames" in out[1].extra["error"] and "2 timestamps" in out[2].extra["error"]
    assert np.isnan([out[1].p_ghost_probing, out[2].p_ghost_probing]).all()
    assert [out[0].p_ghost_probing, out[3].p_ghost_probing] == pytest.approx(
        [o.p_ghost_probing for o in good], abs=1e-5
    )
    messages = " ".join(str(w.message) for w in warned)
    assert "corrupt frames" in messages and "2 timestamps" in messages


def test_unknown_video_kwargs_are_refused_at_load(load):
    with pytest.raises(ValueError, match="sizee"):
        load(video_kwargs={"sizee": 64})


@pytest.mark.parametrize(
    "limits,kept",
    [({"num_frames": 3}, [0, 4, 8]), ({"fps": 0.5}, [0, 4, 8]), ({"num_frames": 20, "fps": 4.0}, list(range(9)))],
)
def test_num_frames_and_fps_thin_the_stored_frames_evenly(load, limits, kept):
    full = clip("long", num_frames=9, seed=6)  # frames every 0.5 s over 4 s
    thinned = ClipInput("long", full.frames[kept], tuple(full.timestamps_s[i] for i in kept))
    expected = load().score([thinned], prompt("zh"))[0]
    out = load(**limits).score([full], prompt("zh"))[0]
    assert out.tokens_in == expected.tokens_in
    assert out.p_ghost_probing == pytest.approx(expected.p_ghost_probing, abs=1e-6)


def test_answer_words_with_the_same_first_token_are_refused(load):
    clash = dataclasses.replace(prompt("en"), yes_word="Yes", no_word="Yesno")
    with pytest.raises(ValueError, match="same token"):
        load().score(CLIPS[:1], clash)


def test_missing_folder_is_named(tmp_path):
    missing = tmp_path / "checkpoints" / "Qwen2.5-VL-7B-Instruct"
    with pytest.raises(FileNotFoundError, match="huggingface-cli download") as error:
        build_model({**CONF, "path": str(missing)})
    assert str(missing) in str(error.value)


@pytest.mark.parametrize("name", ["qwen2_5_vl_7b", "videollama3_7b", "llava_onevision_7b"])
def test_shipped_configs_reach_the_checkpoint_check(name, tmp_path):
    cfg = yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text())
    assert cfg["kind"] == "hf_native" and cfg["name"] == name
    # every key is an argument of the backend; the only failure left is the absent checkpoint folder
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "absent"))):
        build_model({**cfg, "path": str(tmp_path / "absent")})


def test_qwen_inputs_equal_the_processors_own_chat_template_path(load):
    # The model sees its authors' prompt: our template-then-processor path gives the ids, text and pixels that
    # the processor's one-call chat path (apply_chat_template with the video in the message) gives.
    from ghostprobe.models.hf_native import video_metadata
    from ghostprobe.prompts import frames_message

    model, the_clip, asked = load(), CLIPS[0], prompt("en")
    ours = model._inputs([the_clip], asked, asked.question)
    text = f"{frames_message(the_clip.timestamps_s, asked.language)}\n{asked.question}"
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": asked.system}]},
        {"role": "user", "content": [{"type": "video", "video": the_clip.frames}, {"type": "text", "text": text}]},
    ]
    theirs = load.processor.apply_chat_template(
        conversation,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"videos_kwargs": {"do_sample_frames": False, "video_metadata": [video_metadata(the_clip)]}},
    )
    assert ours["input_ids"].tolist() == theirs["input_ids"].tolist()
    video_pad = load.processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert int((ours["input_ids"] == video_pad).sum()) == 32  # 4 frames: 2 temporal patches x 16 tokens
    torch.testing.assert_close(ours["pixel_values_videos"], theirs["pixel_values_videos"].float())
    assert ours["video_grid_thw"].tolist() == theirs["video_grid_thw"].tolist()


@pytest.mark.parametrize(
    "language,message",
    [
        ("en", "The video contains 4 frames sampled at 0.1, 0.1, 0.2, 3600.2 seconds."),
        ("zh", "视频包含4帧，采样时间为 0.1, 0.1, 0.2, 3600.2 秒。"),
    ],
)
def test_the_frames_message_the_model_reads_is_unchanged(load, language, message):
    # What this backend wrote before the frames message had one home (commit 5c9d31f, f"{t:.1f}"), on odd times.
    odd = ClipInput("odd", clip("odd").frames, (0.05, 0.15, 0.25, 3600.25))
    asked = prompt(language)
    ids = load()._inputs([odd], asked, asked.question)["input_ids"][0]
    assert f"<|vision_end|>{message}\n{asked.question}<|im_end|>" in load.processor.tokenizer.decode(ids)
    ids = load(frames_message=False)._inputs([odd], asked, asked.question)["input_ids"][0]
    assert f"<|vision_end|>{asked.question}<|im_end|>" in load.processor.tokenizer.decode(ids)


def test_thinning_limits_and_a_zero_frame_limit_is_refused():
    nine = clip("nine", num_frames=9)  # every 0.5 s over 4 s
    assert nine.evenly_thinned().timestamps_s == nine.timestamps_s
    assert nine.evenly_thinned(max_fps=1.0).timestamps_s == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert nine.evenly_thinned(max_frames=4, max_fps=1.0).timestamps_s == (0.0, 1.5, 2.5, 4.0)
    with pytest.raises(ValueError, match="clip nine: at most 0 frames asked"):
        nine.evenly_thinned(max_frames=0)


def test_max_memory_keys_from_the_command_line_reach_the_loader_as_gpu_indices(load, monkeypatch):
    loaded = {}
    original = hf_native.AutoModelForImageTextToText.from_pretrained

    def recording(folder, **kwargs):
        loaded.update(kwargs)
        return original(folder, **kwargs)

    monkeypatch.setattr(hf_native.AutoModelForImageTextToText, "from_pretrained", recording)
    load(device_map="cpu", max_memory={"0": "1GiB", "cpu": "2GiB"})
    assert loaded["max_memory"] == {0: "1GiB", "cpu": "2GiB"}
    load(device_map="cpu", max_memory={})
    assert loaded["max_memory"] is None
