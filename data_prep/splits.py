"""Train/val/test assignment: fixed splits honoured, the rest stratified by label, groups never split.

Clips that share a `group` (same route, same source recording) are near-duplicates; putting them on both sides of a
split inflates test scores, so a group is the unit of assignment. Clips without a group are groups of one.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

from ghostprobe.labels import SPLIT_NAMES, ClipLabel


def assign_splits(clips: list[ClipLabel], ratios: dict[str, float], seed: int) -> tuple[dict[str, str], list[str]]:
    """Return (clip_id -> split, warnings). Deterministic for the same clips, ratios and seed."""
    unknown = set(ratios) - set(SPLIT_NAMES)
    if unknown or not ratios or sum(ratios.values()) <= 0:
        raise ValueError(f"split_ratios must give non-negative weights for {SPLIT_NAMES}, got {dict(ratios)}")
    total = sum(ratios.values())
    fractions = {name: ratios.get(name, 0.0) / total for name in SPLIT_NAMES}

    groups: dict[str, list[ClipLabel]] = defaultdict(list)
    for clip in clips:
        groups[clip.group if clip.group is not None else f"\0clip:{clip.clip_id}"].append(clip)

    assignment: dict[str, str] = {}
    warnings: list[str] = []
    counts: dict[str, Counter] = {name: Counter() for name in SPLIT_NAMES}
    free_groups = []
    for key, members in groups.items():
        fixed = Counter(c.split for c in members if c.split is not None)
        if not fixed:
            free_groups.append(key)
            continue
        group_split = fixed.most_common(1)[0][0]
        if len(fixed) > 1:
            warnings.append(f"group {key!r} has clips in several fixed splits {dict(fixed)}: near-duplicates may "
                            f"straddle splits; clips without a split go to {group_split!r}")
        for clip in members:
            split = clip.split or group_split
            assignment[clip.clip_id] = split
            counts[split][clip.label] += 1

    label_totals = Counter(clip.label for clip in clips)
    # Big groups first (they are the hardest to place), then a seeded shuffle so order carries no bias.
    free_groups.sort(key=lambda key: (-len(groups[key]), _hash(seed, key)))
    for key in free_groups:
        members = groups[key]
        majority = Counter(c.label for c in members).most_common(1)[0][0]
        # The split furthest below its share of this label; ties go to the earlier split name.
        split = max(SPLIT_NAMES, key=lambda s: (fractions[s] * label_totals[majority] - counts[s][majority]
                                                if fractions[s] > 0 else float("-inf")))
        for clip in members:
            assignment[clip.clip_id] = split
            counts[split][clip.label] += 1
    return assignment, warnings


def _hash(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
