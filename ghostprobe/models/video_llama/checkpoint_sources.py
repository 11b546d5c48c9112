"""The original checkpoint files, read lazily: key names, shapes and dtypes without the data, tensors one at a time.

A .pth/.bin file is opened with `torch.load(mmap=True, weights_only=True)`: its tensors stay in the file until read,
and the mapping goes when the file is closed. A .safetensors file is opened with `safe_open`, which reads the header
only. So the converter holds at most one source file's pages at a time, whatever the model's size.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch


class ConversionError(RuntimeError):
    """The sources do not fit the model: the message names the files or keys and what to do."""


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def load_torch_checkpoint(path: str | Path, allow_pickle: bool = False, mmap: bool = False):
    """torch.load a .pth/.bin on CPU with weights_only=True; full unpickling only when the user opts in.

    mmap=True leaves the tensors in the file until they are read (files written by torch >= 1.6; older ones are
    read whole).
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    # The zip container is what torch.load can map; the legacy format (torch < 1.6) can only be read whole.
    mmap = mmap and zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:  # what weights_only=True raises for anything but plain tensors/dicts
        if not allow_pickle:
            raise ConversionError(
                f"{path}: cannot be read with torch.load(weights_only=True): {error}\n"
                "If you trust this file, rerun with --allow-pickle (it executes code stored in the pickle)."
            ) from error
    return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)


def model_state(checkpoint, path: str | Path) -> dict:
    """The state dict of a checkpoint that is one, or holds one under "model" (LAVIS and Video-LLaMA files)."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConversionError(f"{path}: expected a state dict or {{'model': state dict}}, got {type(checkpoint)}")
    return state


class _SafetensorsReader(Mapping):
    """A .safetensors file as a read-only mapping: shapes and dtypes from the header, a tensor read per lookup."""

    def __init__(self, handle):
        self._handle, self._keys = handle, list(handle.keys())

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._handle.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def meta(self, key: str) -> tuple[tuple[int, ...], torch.dtype]:
        tensor_slice = self._handle.get_slice(key)
        return tuple(tensor_slice.get_shape()), _SAFETENSORS_DTYPES[tensor_slice.get_dtype()]


@dataclass(frozen=True)
class TensorFile:
    """One file of original tensors whose keys get `prefix` (e.g. "llama_model."), or a state dict already in memory.

    `open()` yields a mapping original key (prefix included) -> tensor; `meta(key)` of that mapping's source gives
    (shape, dtype) without reading the data.
    """

    path: Path | None
    prefix: str = ""
    allow_pickle: bool = False
    state: Mapping[str, torch.Tensor] | None = None

    @contextlib.contextmanager
    def open(self) -> Iterator[_PrefixedTensors]:
        if self.state is not None:
            yield _PrefixedTensors(self.state, self.prefix)
        elif self.path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(self.path), framework="pt", device="cpu") as handle:
                yield _PrefixedTensors(_SafetensorsReader(handle), self.prefix)
        else:
            state = model_state(load_torch_checkpoint(self.path, self.allow_pickle, mmap=True), self.path)
            try:
                yield _PrefixedTensors(state, self.prefix)
            finally:
                state.clear()  # the last references to the mapped storages: the file is unmapped here

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "(in memory)"


class _PrefixedTensors:
    """The tensors of one open TensorFile under their original-namespace keys."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], prefix: str):
        self._tensors, self._prefix = tensors, prefix

    def keys(self) -> list[str]:
        return [self._prefix + key for key in self._tensors]

    def meta(self, key: str) -> tuple[tuple[int, ...], torch.dtype]:
        """(shape, dtype) of `key` without reading its data."""
        key = key[len(self._prefix) :]
        if isinstance(self._tensors, _SafetensorsReader):
            return self._tensors.meta(key)
        tensor = self._tensors[key]  # mapped, not read: shape and dtype come from the pickle
        return tuple(tensor.shape), tensor.dtype

    def tensor(self, key: str) -> torch.Tensor:
        return self._tensors[key[len(self._prefix) :]]


@dataclass(frozen=True)
class Source:
    """One original source as the user names it (a .pth file, the LLaMA folder) and the files it is read from."""

    name: str
    files: tuple[TensorFile, ...]


def torch_source(path: str | Path, prefix: str = "", allow_pickle: bool = False) -> Source:
    """A .pth/.bin file ({"model": state} or a plain state dict), read lazily."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    return Source(path.name, (TensorFile(path, prefix, allow_pickle),))


def memory_source(name: str, state: Mapping[str, torch.Tensor]) -> Source:
    """A state dict already in memory whose keys carry the original model's prefixes."""
    return Source(name, (TensorFile(None, state=state),))


# (index, single file) of an HF LLaMA folder's weights, in the order they are looked for
LLAMA_WEIGHT_FILES = (
    ("model.safetensors.index.json", "model.safetensors"),
    ("pytorch_model.bin.index.json", "pytorch_model.bin"),
)


def has_llama_weights(folder: str | Path) -> bool:
    """Whether `folder` holds an HF LLaMA's weights in a form `llama_weight_files` reads."""
    folder = Path(folder)
    return folder.is_dir() and any((folder / name).exists() for pair in LLAMA_WEIGHT_FILES for name in pair)


def llama_weight_files(folder: str | Path) -> list[Path]:
    """The weight files of an HF LLaMA folder: model.safetensors(.index.json) or pytorch_model.bin(.index.json)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder}: not a folder (expected the llama-2-*-chat-hf folder)")
    for index_name, single_name in LLAMA_WEIGHT_FILES:
        index = folder / index_name
        if index.exists():
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [name for name in names if not (folder / name).is_file()]
            if missing:
                raise ConversionError(f"{index}: lists {missing} but the folder lacks them (incomplete download?)")
            return [folder / name for name in names]
        if (folder / single_name).is_file():
            return [folder / single_name]
    raise ConversionError(f"{folder}: no model.safetensors[.index.json] or pytorch_model.bin[.index.json] found")


def llama_source(folder: str | Path, allow_pickle: bool = False) -> Source:
    """An HF LLaMA folder, its keys under "llama_model." as in the original model; one file open at a time."""
    files = tuple(TensorFile(path, "llama_model.", allow_pickle) for path in llama_weight_files(folder))
    return Source(Path(folder).name, files)


def load_llama_folder(folder: str | Path, allow_pickle: bool = False) -> dict:
    """All tensors of an HF LLaMA folder in memory, under the folder's own keys (for small models and tests)."""
    state = {}
    for file in llama_source(folder, allow_pickle).files:
        with file.open() as tensors:
            state.update({key.removeprefix("llama_model."): tensors.tensor(key).clone() for key in tensors.keys()})
    return state
