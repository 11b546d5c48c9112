"""The trained set a recipe makes (train/model_setup.py) is what DeepSpeed can train on a GPU."""

import pytest
import torch

from helpers import tiny_model
from train.model_setup import apply_training_policy, parameter_counts

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
VIDEO_SIDE = ["video_qformer", "video_query_tokens", "video_frame_position_embedding", "llama_proj"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_lora_adapters_and_the_video_side_are_trained_in_the_models_dtype(dtype):
    """ZeRO-3 flattens the trained parameters into one buffer of one dtype (DeepSpeed's defragment asserts it): the
    first GPU run of lora_fewshot in bf16 stopped there, peft having upcast the adapters to fp32 beside the bf16 video
    Q-Former. DeepSpeed holds the fp32 master copies itself."""
    model = apply_training_policy(tiny_model().to(dtype), "lora", VIDEO_SIDE, LORA)
    trained = {name: p.dtype for name, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in name for name in trained) and any("video_qformer" in name for name in trained)
    assert set(trained.values()) == {dtype}, {
        d: [n for n, x in trained.items() if x == d][:3] for d in trained.values()
    }


def test_lora_trains_adapters_and_the_named_modules_only():
    model = apply_training_policy(tiny_model(), "lora", ["llama_proj"], LORA)
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in name or ".llama_proj." in name for name in trained), trained
    assert not any("qformer" in name.lower() and "lora_" in name for name in trained)  # adapters in the LLM only
    counts = parameter_counts(model)
    assert 0 < counts["trainable"] < counts["total"]
