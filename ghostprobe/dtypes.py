"""The dtype names conf/ uses (conf/hardware/, train.precision, converter and export flags) and their torch dtypes."""

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def dtype_by_name(name: str, key: str = "dtype") -> torch.dtype:
    """The torch dtype of a conf name; ValueError naming the config key otherwise."""
    if name not in DTYPES:
        raise ValueError(f"{key} must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]
