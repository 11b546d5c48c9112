"""The dtype names conf/ uses (conf/hardware/, train.precision, converter and export flags), their torch dtypes, and
what "auto" picks."""

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def dtype_by_name(name: str, key: str = "dtype") -> torch.dtype:
    """The torch dtype of a conf name; ValueError naming the config key otherwise."""
    if name not in DTYPES:
        raise ValueError(f"{key} must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def auto_dtype_name(device_type: str) -> str:
    """What "auto" means for a device: bf16 on GPUs that have it (A100, H100), fp16 on older ones (V100), fp32 on CPU
    (half precision on CPU is slow and, for some kernels, missing)."""
    if device_type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
