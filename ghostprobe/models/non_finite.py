"""The non-finite guard every local model shares: fp16 overflow gives NaN/inf logits, which must never become a
score or an answer (argmax of NaN is noise, sampling crashes on it).

`nan_guard` (conf/hardware/) true: such a clip gets no score / no answer, extra["error"] and a warning; false:
FloatingPointError at the first one, for debugging precision problems.
"""

from __future__ import annotations

import warnings

import torch
from transformers import LogitsProcessor

from ghostprobe.models.base import ModelOutput


class NonFiniteRows(LogitsProcessor):
    """Marks rows whose next-token scores are broken (in `bad`) and ends them with `stop_id`.

    -inf is legitimate (generate's processors and top-p remove tokens so, and the order they run in varies between
    transformers versions); NaN, +inf or a row with nothing left are not.
    """

    def __init__(self, stop_id: int):
        self.stop_id, self.bad = stop_id, None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        bad = scores.isnan().any(-1) | scores.isposinf().any(-1) | scores.isneginf().all(-1)
        self.bad = bad if self.bad is None else self.bad | bad
        if bad.any():
            scores = scores.masked_fill(bad[:, None], float("-inf"))
            scores[bad, self.stop_id] = 0.0
        return scores

    def row_is_bad(self, row: int) -> bool:
        """Whether row `row` had broken scores at any step."""
        return self.bad is not None and bool(self.bad[row])


def flag_non_finite(output: ModelOutput, nan_guard: bool) -> None:
    """Record that `output`'s clip had non-finite logits (extra["error"] and a warning), or raise when not guarded."""
    message = f"clip {output.clip_id!r}: non-finite logits (fp16 overflow? try dtype=bf16 or fp32); no score/answer"
    if not nan_guard:
        raise FloatingPointError(message)
    output.extra["error"] = message
    warnings.warn(message)
