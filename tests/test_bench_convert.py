"""scripts/bench_convert.py's comparison of two converted folders, which its "identical" verdict rests on: it must
see a changed value, a changed dtype and a changed config, and nothing in a true copy."""

import importlib.util
import json
import shutil

from safetensors.torch import load_file, save_file

from ghostprobe.models.video_llama import video_llama_config
from ghostprobe.models.video_llama.convert import convert_checkpoints
from ghostprobe.models.video_llama.fake_originals import write_fake_originals
from helpers import REPO_ROOT


def _bench_convert():
    spec = importlib.util.spec_from_file_location("bench_convert", REPO_ROOT / "scripts" / "bench_convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_folders_sees_a_changed_value_dtype_or_config_and_nothing_in_a_copy(tmp_path):
    compare_folders = _bench_convert().compare_folders
    originals = write_fake_originals(tmp_path / "originals")
    convert_checkpoints(tmp_path / "a", base_config=video_llama_config("tiny"), log=lambda line: None, **originals)
    convert_checkpoints(
        tmp_path / "fp32", base_config=video_llama_config("tiny"), dtype="fp32", log=lambda line: None, **originals
    )
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    assert compare_folders(tmp_path / "a", tmp_path / "copy") == []

    differences = compare_folders(tmp_path / "a", tmp_path / "fp32")
    assert (
        "language_model.lm_head.weight: torch.float16 (1024, 64) vs torch.float32 (1024, 64), values differ"
        in differences
    )
    assert "config.json: contents differ" in differences  # "dtype": float16 vs float32

    tensors = load_file(tmp_path / "copy" / "model.safetensors")
    tensors["llama_proj.bias"][3] += 1
    save_file(tensors, tmp_path / "copy" / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((tmp_path / "copy" / "config.json").read_text())
    (tmp_path / "copy" / "config.json").write_text(json.dumps(dict(config, max_frames=9)))
    assert compare_folders(tmp_path / "a", tmp_path / "copy") == [
        "llama_proj.bias: torch.float16 (64,) vs torch.float16 (64,), values differ",
        "config.json: contents differ",
    ]
