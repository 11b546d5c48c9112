"""Write a planned set of tensors into safetensors shards, each tensor straight to its place in its file.

The shapes and dtypes of every tensor are known before the first one is read (the converter's plan), so each shard's
header, hence every tensor's offset, is known up front: a tensor is written the moment it is converted and never
waits in memory for the rest of its shard. Shards are cut as transformers' `save_pretrained` cuts them
(huggingface_hub's `split_torch_state_dict_into_shards`, in the order the tensors arrive), and named and indexed as
it names them: `model.safetensors`, or `model-0000i-of-0000n.safetensors` + `model.safetensors.index.json`.

The format (https://github.com/huggingface/safetensors#format): an 8-byte little-endian header length, a JSON header
{key: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}} padded with spaces to a multiple of 8 bytes,
then the tensors' bytes. safetensors' own reader checks every file this writes (tests/test_convert_video_llama.py).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from huggingface_hub import split_torch_state_dict_into_shards

_DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
INDEX_NAME = "model.safetensors.index.json"


class ShardedSafetensorsWriter:
    """Writes the tensors `planned` (key -> (shape, dtype), in the order they will arrive) into `folder`.

    `write(key, tensor)` in any order, each key once; `close()` checks that every planned tensor was written and
    writes the index. Memory: nothing beyond the tensor being written.
    """

    def __init__(
        self, folder: str | Path, planned: dict[str, tuple[tuple[int, ...], torch.dtype]], max_shard_size: int | str
    ):
        self.folder = Path(folder)
        with torch.device("meta"):
            placeholders = {key: torch.empty(shape, dtype=dtype) for key, (shape, dtype) in planned.items()}
        unsupported = sorted({str(t.dtype) for t in placeholders.values() if t.dtype not in _DTYPE_NAMES})
        if unsupported:
            raise ValueError(f"safetensors dtypes not handled here: {unsupported}")
        self.split = split_torch_state_dict_into_shards(placeholders, max_shard_size=max_shard_size)
        self._where: dict[str, tuple[object, int, int]] = {}  # key -> (open file, byte offset, byte length)
        self._files = []
        for filename, keys in self.split.filename_to_tensors.items():
            self._files.append(self._start_shard(self.folder / filename, {k: placeholders[k] for k in keys}))
        self._unwritten = set(planned)
        self.total_size = int(self.split.metadata["total_size"])
        self.total_parameters = sum(t.numel() for t in placeholders.values())

    def _start_shard(self, path: Path, tensors: dict[str, torch.Tensor]):
        """Create `path` with its header; the data region is filled by `write`."""
        # Wider elements first, as safetensors' own writer orders them, so that every tensor starts at a multiple of
        # its element size (the header is padded to 8 bytes) and can be mapped without a copy when loading.
        order = sorted(tensors, key=lambda key: (-tensors[key].element_size(), key))
        header, offset = {}, 0
        for key in order:
            length = tensors[key].numel() * tensors[key].element_size()
            header[key] = {
                "dtype": _DTYPE_NAMES[tensors[key].dtype],
                "shape": list(tensors[key].shape),
                "data_offsets": [offset, offset + length],
            }
            offset += length
        header["__metadata__"] = {"format": "pt"}  # transformers refuses files without it
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)
        handle = open(path, "wb")
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        data_start = 8 + len(encoded)
        handle.truncate(data_start + offset)  # the file's final size: a missing tensor cannot shorten it unnoticed
        for key in order:
            begin, end = header[key]["data_offsets"]
            self._where[key] = (handle, data_start + begin, end - begin)
        return handle

    def write(self, key: str, tensor: torch.Tensor) -> None:
        """Write one planned tensor (its planned shape and dtype) to its place."""
        if key not in self._unwritten:
            raise KeyError(f"{key}: not planned, or written twice")
        handle, offset, length = self._where[key]
        data = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
        if data.numel() != length:
            raise ValueError(f"{key}: {data.numel()} bytes, the plan says {length}")
        handle.seek(offset)
        handle.write(memoryview(data.numpy()))
        self._unwritten.discard(key)

    def close(self) -> None:
        """Close every shard and write the index (several shards); raises if a planned tensor was never written."""
        for handle in self._files:
            handle.close()
        if self._unwritten:
            raise RuntimeError(
                f"{len(self._unwritten)} planned tensors were never written, e.g. {sorted(self._unwritten)[:3]}"
            )
        if self.split.is_sharded:
            index = {
                "metadata": {"total_parameters": self.total_parameters, "total_size": self.total_size},
                "weight_map": dict(sorted(self.split.tensor_to_filename.items())),
            }
            (self.folder / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    def abort(self) -> None:
        """Close the files without checks (the caller removes the unfinished folder)."""
        for handle in self._files:
            handle.close()
