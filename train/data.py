"""Training data: prepared clips (data_prep's DatasetDict) -> processor batches with answer labels.

Frames come decoded and resized from data prep; nothing here opens a video. Each batch carries, besides the model
inputs, `targets` [B, 2] = (is_ghost_probing, dataset index), which the trainer pops before the forward pass and
uses for the validation metrics (the index lets it write per-clip scores in dataset order).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ghostprobe.dataset import TRAIN_COLUMNS
from ghostprobe.frames import frames_from_row
from ghostprobe.models.base import ClipInput
from ghostprobe.models.video_llama.processing import AnswerChoice, VideoLlamaProcessor
from ghostprobe.prompts import Prompt


class MissingSplit(KeyError):
    """The prepared dataset has no split of the name asked for (`available`: the ones it has)."""

    def __init__(self, path: Path, split: str, available: Sequence[str]):
        super().__init__(f"{path}: no split {split!r} (it has {', '.join(available)}); set data.*_split")
        self.path, self.split, self.available = path, split, list(available)


class PreparedClips(Dataset):
    """One split of a prepared dataset (docs/labels.md, "The prepared dataset"), read row by row.

    Args:
        path: the folder data_prep wrote (`datasets.load_from_disk`).
        split: "train", "val" or "test".
        max_samples: keep only the first N rows (quick runs); None keeps all.
    """

    def __init__(self, path: str | Path, split: str, max_samples: int | None = None):
        import datasets

        if not Path(path).is_dir():
            raise FileNotFoundError(
                f"data.path={path}: no prepared dataset there; make one with "
                "python data_prep/main.py labels=FILE out_dir=DIR (or source=synthetic)"
            )
        splits = datasets.load_from_disk(str(path))
        if split not in splits:
            raise MissingSplit(Path(path), split, list(splits))
        rows = splits[split]
        missing = [c for c in TRAIN_COLUMNS if c not in rows.column_names]
        if missing:
            raise KeyError(f"{path} split {split!r} lacks column(s) {missing}: re-run data prep")
        if max_samples is not None:
            rows = rows.select(range(min(max_samples, len(rows))))
        # numpy format: the Array4D frames of a dataset prepared before come as one array, not nested Python lists
        # (~20x faster); today's uint8 blocks (ghostprobe.frames.packed_frames) read the same in any format.
        self.rows = rows.select_columns(list(TRAIN_COLUMNS)).with_format("numpy")
        self.labels = np.asarray(rows["is_ghost_probing"], dtype=bool)
        self.sample_ids = [str(s) for s in rows["sample_id"]]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[int(index)]
        clip = ClipInput(
            str(row["sample_id"]), frames_from_row(row["frames"]), tuple(float(t) for t in row["timestamps_s"])
        )
        return {"clip": clip, "label": bool(row["is_ghost_probing"]), "index": int(index)}


def check_answers(processor: VideoLlamaProcessor, prompt: Prompt, yes_answer: str, no_answer: str) -> AnswerChoice:
    """The scoring tokens of `prompt`, after checking that the training answers start with them.

    Validation reads P(yes) at the position where the answer's deciding token is predicted; answers that begin
    otherwise (e.g. "The video shows...") would train one thing and score another.
    """
    choice = processor.answer_choice(prompt.yes_word, prompt.no_word)
    for answer, token in ((yes_answer, choice.yes_id), (no_answer, choice.no_id)):
        ids = processor.answer_ids(answer)
        expected = [*choice.prefix_ids, token]
        if ids[: len(expected)] != expected:
            raise ValueError(
                f"training answer {answer!r} does not start with the prompt's answer word "
                f"({prompt.yes_word!r}/{prompt.no_word!r}): set train.answers to start with it"
            )
    return choice


class AnswerCollator:
    """Items of `PreparedClips` -> a left-padded processor batch with labels on the answer tokens + `targets`."""

    def __init__(self, processor: VideoLlamaProcessor, prompt: Prompt, yes_answer: str, no_answer: str):
        self.processor, self.prompt = processor, prompt
        self.yes_answer, self.no_answer = yes_answer, no_answer
        self.choice = check_answers(processor, prompt, yes_answer, no_answer)

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        answers = [self.yes_answer if item["label"] else self.no_answer for item in items]
        batch = self.processor([item["clip"] for item in items], self.prompt, answers=answers)
        batch["targets"] = torch.tensor([[int(item["label"]), item["index"]] for item in items], dtype=torch.long)
        return batch


class BalancedSampler(Sampler[int]):
    """Draws `len(labels)` indices per epoch with replacement, each class equally likely (class-balanced sampling).

    The draw depends only on (seed, epoch): the trainer calls `set_epoch`, so a resumed run replays the same order
    and skips exactly the batches it had already trained on.
    """

    def __init__(self, labels: Sequence[bool], seed: int):
        self.labels = np.asarray(labels, dtype=bool)
        counts = Counter(self.labels.tolist())
        if len(counts) < 2:
            raise ValueError(f"class-balanced sampling needs both classes in the train split, got {dict(counts)}")
        self.weights = np.where(self.labels, 0.5 / counts[True], 0.5 / counts[False])
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        return iter(rng.choice(len(self.labels), size=len(self.labels), replace=True, p=self.weights).tolist())
