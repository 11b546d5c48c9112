"""`kind: video_llama` on the tiny checkpoint (CPU): scores, answers, bad clips, NaN guard, model/hardware configs."""

import dataclasses
import importlib.util
import inspect

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from ghostprobe.config import CONF_DIR, compose
from ghostprobe.models.base import ClipInput, build_model
from ghostprobe.models.non_finite import NonFiniteRows
from ghostprobe.models.video_llama import VideoLlamaForConditionalGeneration, video_llama_config
from ghostprobe.models.video_llama.backend import (
    VideoLlamaBackend,
    answer_logits,
    from_pretrained_kwargs,
    yes_probability,
)
from ghostprobe.models.video_llama.precision import PrecisionPolicy
from ghostprobe.models.video_llama.tiny import build_tiny_checkpoint
from ghostprobe.prompts import load_prompt

HARDWARE = {
    p.stem: OmegaConf.to_container(compose("eval", [f"hardware={p.stem}"]).hardware)  # as eval loads them
    for p in sorted((CONF_DIR / "hardware").glob("*.yaml"))
}
LOAD_KEYS = inspect.signature(from_pretrained_kwargs).parameters


def _prompt(name):
    return load_prompt(yaml.safe_load((CONF_DIR / "prompt" / f"{name}.yaml").read_text(encoding="utf-8")))


def _clips():
    """Clips whose prompts differ in length (timestamps print wider), so a batch of them needs padding."""
    rng = np.random.default_rng(0)
    times = [(0.0, 1.0, 2.0), (0.0, 12.5, 25.0), (0.0, 1.5, 3.0), (10.0, 11.0, 12.0)]
    return [ClipInput(f"clip{i}", rng.integers(0, 256, (3, 36, 64, 3), dtype=np.uint8), t) for i, t in enumerate(times)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny_video_llama"))


@pytest.fixture(scope="module")
def backend(tiny_dir):
    return build_model(
        {
            "kind": "video_llama",
            "path": str(tiny_dir),
            "batch_size": 3,
            **HARDWARE["cpu"],
            "generation": {"max_new_tokens": 6},
        }
    )


def test_build_model_loads_a_converted_folder(backend, tiny_dir):
    assert isinstance(backend, VideoLlamaBackend) and backend.name == tiny_dir.name
    assert backend.model.language_model.dtype == torch.float32 and not backend.model.training
    with pytest.raises(FileNotFoundError, match="convert_video_llama.py"):
        build_model({"kind": "video_llama", "path": str(tiny_dir / "absent")})
    with pytest.raises(ValueError, match="unknown generation setting"):
        build_model({"kind": "video_llama", "path": str(tiny_dir), "generation": {"top_k": 5}})


@pytest.mark.parametrize("prompt_name", ["zh", "en"])
def test_batched_scores_equal_unbatched(backend, tiny_dir, prompt_name):
    prompt, clips = _prompt(prompt_name), _clips()
    batched = [o.p_ghost_probing for o in backend.score(clips, prompt)]  # batches of 3 and 1
    single = build_model({"kind": "video_llama", "path": str(tiny_dir), "batch_size": 1, **HARDWARE["cpu"]})
    alone = [o.p_ghost_probing for o in single.score(clips, prompt)]
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)
    assert np.ptp(batched) > 1e-3  # the clips do get different scores

    # The comparison can fail: the batch is padded, and reading the padding would move the scores.
    choice = backend.processor.answer_choice(prompt.yes_word, prompt.no_word)
    batch = backend.processor(clips[:3], prompt, suffix_ids=choice.prefix_ids)
    assert not batch["attention_mask"].all()
    with torch.no_grad():
        unmasked = answer_logits(backend.model, {**batch, "attention_mask": torch.ones_like(batch["input_ids"])})
        masked = answer_logits(backend.model, batch)
    assert (unmasked - masked).abs().max() > 1e-3


@pytest.mark.parametrize("prompt_name", ["zh", "en"])
def test_score_is_the_softmax_of_the_two_answer_logits_where_the_answer_starts(backend, prompt_name):
    prompt, clips = _prompt(prompt_name), _clips()[:2]
    outputs = backend.score(clips, prompt)
    choice = backend.processor.answer_choice(prompt.yes_word, prompt.no_word)
    batch = backend.processor(clips, prompt, suffix_ids=choice.prefix_ids)
    with torch.no_grad():
        logits = backend.model(**batch).logits[:, -1].double()
    by_hand = logits[:, choice.yes_id].exp() / (logits[:, choice.yes_id].exp() + logits[:, choice.no_id].exp())
    mass = logits.softmax(-1)[:, [choice.yes_id, choice.no_id]].sum(-1)
    for row, output in enumerate(outputs):
        assert 0.0 <= output.p_ghost_probing <= 1.0
        assert output.p_ghost_probing == pytest.approx(float(by_hand[row]), abs=1e-6)
        assert output.extra["answer_token_mass"] == pytest.approx(float(mass[row]), abs=1e-6)
        assert output.tokens_in == int(batch["attention_mask"][row].sum()) and output.latency_s > 0
    with torch.no_grad():  # the function the trainer scores validation clips with
        torch.testing.assert_close(yes_probability(backend.model, batch, choice).double(), by_hand, atol=1e-6, rtol=0)
    if prompt_name == "zh":  # " 是" is ["▁", "是"]: the score is read after "▁", not at "[/INST]"
        plain = backend.processor(clips, prompt)
        with torch.no_grad():
            early = backend.model(**plain).logits[:, -1]
        assert choice.prefix_ids and not torch.allclose(early[:, choice.yes_id], logits[:, choice.yes_id].float())
        with pytest.raises(ValueError, match="suffix_ids=choice.prefix_ids"):
            yes_probability(backend.model, plain, choice)


def test_generate_decodes_cuts_at_eos_and_parses(backend, monkeypatch):
    prompt, clips = _prompt("zh"), _clips()[:3]
    processor, eos, pad = backend.processor, backend.processor.eos_id, backend.processor.pad_id
    replies = {
        "detect": ["是，出现了鬼探头。", "否", "无法判断"],
        "when": ["约在第3.5秒", "No ghost probing in this 10 s clip", "3秒"],
    }
    calls = []

    def fake_generate(input_ids, attention_mask, pixel_values, **kwargs):
        calls.append(kwargs)
        question = "detect" if len(calls) == 1 else "when"
        rows = [processor.answer_ids(text) + [eos] for text in replies[question]]
        width = max(map(len, rows)) + 2  # tokens after </s> are padding and must be dropped
        new = torch.tensor([row + [pad] * (width - len(row)) for row in rows])
        return torch.cat([input_ids, new], dim=1)

    monkeypatch.setattr(backend.model, "generate", fake_generate)
    detect = backend.generate(clips, prompt)
    assert [o.answer for o in detect] == replies["detect"] and [o.parsed_answer for o in detect] == [True, False, None]
    assert [o.tokens_out for o in detect] == [len(processor.answer_ids(t)) + 1 for t in replies["detect"]]
    when = backend.generate(clips, prompt, question="when")
    # a "no" that names the clip's length has no event time (one answer reader for every backend)
    assert [(o.parsed_answer, o.event_time_s) for o in when] == [(True, 3.5), (False, None), (True, 3.0)]
    assert calls[0]["do_sample"] is False and "top_p" not in calls[0] and calls[0]["max_new_tokens"] == 6


def test_generate_runs_the_real_model_greedily(backend, tiny_dir):
    prompt, clips = _prompt("en"), _clips()
    first, again = backend.generate(clips, prompt), backend.generate(clips, prompt)
    assert [o.answer for o in first] == [o.answer for o in again]  # greedy: reproducible
    single = build_model(
        {
            "kind": "video_llama",
            "path": str(tiny_dir),
            "batch_size": 1,
            **HARDWARE["cpu"],
            "generation": {"max_new_tokens": 6},
        }
    )
    assert [o.answer for o in single.generate(clips, prompt)] == [o.answer for o in first]
    for output in first:
        assert isinstance(output.answer, str) and 1 <= output.tokens_out <= 6 and output.latency_s > 0

    sampling = build_model(
        {
            "kind": "video_llama",
            "path": str(tiny_dir),
            **HARDWARE["cpu"],
            "generation": {"do_sample": True, "max_new_tokens": 6},
        }
    )
    assert sampling._generate_kwargs() | {"top_p": 0.9, "temperature": 1.0} == sampling._generate_kwargs()
    sampled = [o.answer for o in sampling.generate(clips[:2], prompt)]
    assert all(isinstance(answer, str) for answer in sampled)
    assert [o.answer for o in sampling.generate(clips[:2], prompt)] == sampled  # seeded


def test_generation_guard_tells_overflow_from_removed_tokens():
    guard = NonFiniteRows(stop_id=2)
    scores = torch.randn(4, 8)
    scores[0, 3:] = float("-inf")  # what top-p or min_new_tokens leave: fine
    scores[1, 5], scores[2, 0], scores[3, :] = float("nan"), float("inf"), float("-inf")  # broken rows
    out = guard(None, scores.clone())
    assert guard.bad.tolist() == [False, True, True, True]
    torch.testing.assert_close(out[0], scores[0])
    assert (out[1:].argmax(-1) == 2).all() and out[1:].isfinite().sum() == 3  # broken rows end with </s>


def test_a_clip_with_too_many_frames_is_reported_and_the_others_are_scored(backend):
    clips = _clips()
    too_long = ClipInput("too_long", np.zeros((9, 28, 28, 3), np.uint8), tuple(float(t) for t in range(9)))
    with pytest.warns(UserWarning, match="too_long"):
        outputs = backend.score([clips[0], too_long, clips[1]], _prompt("zh"))
    assert np.isnan(outputs[1].p_ghost_probing) and "max_frames=8" in outputs[1].extra["error"]
    assert np.isfinite([outputs[0].p_ghost_probing, outputs[2].p_ghost_probing]).all()


def test_nan_logits_give_a_nan_score_and_no_answer_never_a_no(tiny_dir):
    broken = build_model(
        {
            "kind": "video_llama",
            "path": str(tiny_dir),
            "batch_size": 2,
            **HARDWARE["cpu"],
            "generation": {"max_new_tokens": 3},
        }
    )
    with torch.no_grad():
        broken.model.language_model.model.norm.weight[0] = float("nan")  # as an fp16 overflow would leave it
    prompt, clips = _prompt("zh"), _clips()[:2]
    with pytest.warns(UserWarning, match="non-finite logits"):
        scores = broken.score(clips, prompt)
    assert all(np.isnan(o.p_ghost_probing) and "non-finite" in o.extra["error"] for o in scores)
    with pytest.warns(UserWarning, match="non-finite logits"):
        answers = broken.generate(clips, prompt)
    assert all(o.answer is None and o.parsed_answer is None for o in answers)
    broken.nan_guard = False
    with pytest.raises(FloatingPointError, match="clip0"):
        broken.score(clips, prompt)


def test_hardware_configs_give_the_load_settings_the_backend_uses():
    backend_keys = inspect.signature(VideoLlamaBackend).parameters
    for name, hardware in HARDWARE.items():
        assert set(hardware) <= set(backend_keys), f"conf/hardware/{name}.yaml: keys the backend does not take"
    policies = {
        name: PrecisionPolicy.from_names(hw["dtype"], hw["vision_dtype"], hw["video_autocast"])
        for name, hw in HARDWARE.items()
    }
    original = PrecisionPolicy(llm=torch.bfloat16, vision=torch.float16, video_autocast=torch.float16)
    assert policies == {
        "a100x8": original,
        "h100": original,
        "v100x4": dataclasses.replace(original, llm=torch.float16),  # never bf16 on V100
        "cpu": PrecisionPolicy(torch.float32, torch.float32, None),
    }
    assert "flash" not in HARDWARE["v100x4"]["sdpa_backends"]


@pytest.mark.parametrize("profile", sorted(HARDWARE))
def test_each_module_runs_in_the_dtype_its_hardware_profile_states(tiny_dir, profile):
    # Run on CPU (fp16 and bf16 kernels exist there too): what matters is which dtype each part computes in.
    hardware = {**HARDWARE[profile], "device": "cpu", "device_map": None, "max_memory": None, "sdpa_backends": None}
    backend = build_model({"kind": "video_llama", "path": str(tiny_dir), **hardware})
    policy, model = backend.precision, backend.model
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            output = output[0] if isinstance(output, tuple) else getattr(output, "logits", output)
            seen[name] = (inputs[0].dtype if inputs else None, output.dtype)

        return hook

    watched = {
        "vit block": model.visual_encoder.encoder.layers[0],
        "ln_vision": model.visual_encoder.post_layernorm,
        "image q-former linear": model.qformer.encoder.layer[0].attention.attention.query,
        "video q-former linear": model.video_qformer.encoder.layer[0].crossattention.attention.key,
        "llama_proj": model.llama_proj,
        "llm layer": model.language_model.model.layers[0],
    }
    for name, module in watched.items():
        module.register_forward_hook(record(name))
    ln_inputs = []
    model.visual_encoder.post_layernorm.register_forward_hook(lambda m, i, o: ln_inputs.append((i[0], o)))
    outputs = backend.score(_clips()[:1], _prompt("en"))
    assert np.isfinite(outputs[0].p_ghost_probing)

    video_side = policy.video_autocast or torch.float32
    assert seen["vit block"][1] == policy.vision
    assert seen["ln_vision"] == (policy.vision, policy.vision)
    assert model.visual_encoder.post_layernorm.weight.dtype == torch.float32
    ln_in, ln_out = ln_inputs[0]
    ln = model.visual_encoder.post_layernorm  # computed in fp32, returned in the ViT's dtype: as the original
    with torch.inference_mode():
        expected = torch.nn.functional.layer_norm(ln_in.float(), ln.normalized_shape, ln.weight, ln.bias, ln.eps)
    assert torch.equal(ln_out, expected.to(policy.vision))
    assert model.qformer.encoder.layer[0].attention.attention.query.weight.dtype == torch.float32
    assert seen["image q-former linear"][1] == video_side
    assert seen["video q-former linear"][1] == video_side
    assert model.llama_proj.weight.dtype == torch.float32 and seen["llama_proj"][1] == video_side
    assert seen["llm layer"] == (policy.llm, policy.llm)


@pytest.mark.parametrize("preset,num_gpus", [("7b", 2), ("13b", 3)])
def test_v100x4_places_the_whole_model_on_16gb_gpus_with_the_vision_side_on_gpu_0(preset, num_gpus):
    from accelerate import infer_auto_device_map

    hardware = HARDWARE["v100x4"]
    kwargs = from_pretrained_kwargs(**{k: v for k, v in hardware.items() if k in LOAD_KEYS})
    assert kwargs["device_map"] == "sequential"  # what transformers then computes, reproduced on the meta device:
    with torch.device("meta"):
        model = VideoLlamaForConditionalGeneration(video_llama_config(preset))
    fp32 = {n: torch.float32 for n, _ in model.named_parameters() if n.split(".")[0] in model._keep_in_fp32_modules}
    # The converted folder's stored dtype (fp16, Q-Former side fp32): what the weights load in before casting.
    placement = infer_auto_device_map(
        model,
        max_memory=kwargs["max_memory"],
        dtype=torch.float16,
        no_split_module_classes=model._no_split_modules,
        special_dtypes=fp32,
    )
    assert set(placement.values()) == set(range(num_gpus))  # no cpu/disk offload
    vision = [
        "visual_encoder",
        "query_tokens",
        "qformer",
        "video_frame_position_embedding",
        "video_query_tokens",
        "video_qformer",
        "llama_proj",
    ]
    assert all(placement[name] == 0 for name in vision)


def test_model_configs_bind_to_the_backend_and_name_missing_checkpoints(tiny_dir):
    names = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    composed = {n: OmegaConf.to_container(compose("eval", [f"model={n}"]).model) for n in names}
    local = [n for n in names if composed[n]["kind"] == "video_llama"]
    assert {"7b_pretrained", "7b_finetuned", "13b_pretrained", "13b_finetuned", "tiny"} <= set(local)
    for name in local:
        cfg = composed[name]
        cfg.pop("kind")
        inspect.signature(VideoLlamaBackend).bind(**cfg, **HARDWARE["cpu"])  # every key is an argument
        if name == "tiny":
            model = build_model({"kind": "video_llama", **cfg, "path": str(tiny_dir), **HARDWARE["cpu"]})
            assert model.name == "tiny_video_llama"
        else:
            with pytest.raises(FileNotFoundError, match=cfg["path"]):
                build_model({"kind": "video_llama", **cfg, **HARDWARE["cpu"]})


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed")
def test_8bit_without_bitsandbytes_is_a_clear_error():
    with pytest.raises(ImportError, match="pip install bitsandbytes"):
        from_pretrained_kwargs(dtype="fp16", load_in_8bit=True)


def test_max_memory_keys_from_the_command_line_become_gpu_indices():
    # `hardware.max_memory={"0": 10GiB, ...}` on the command line gives string keys; accelerate wants ints.
    kwargs = from_pretrained_kwargs(device_map="auto", max_memory={"0": "10GiB", "1": "14GiB", "cpu": "30GiB"})
    assert kwargs["max_memory"] == {0: "10GiB", 1: "14GiB", "cpu": "30GiB"}
    with pytest.raises(ValueError, match="max_memory needs a device_map"):
        from_pretrained_kwargs(max_memory={"0": "10GiB"})
