"""Train/val/test assignment: fixed splits honoured, the rest stratified by label, groups never split.

Clips that share a `group` (same route, same source recording) are near-duplicates; putting them on both sides of a
split inflates test scores, so a group is the unit of assignment. Clips cut from one video file are the same footage
and are joined the same way, whatever their groups say. Clips without a group or shared video are units of one.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

from ghostprobe.labels import SPLIT_NAMES, ClipLabel


def assign_splits(
    clips: list[ClipLabel],
    ratios: dict[str, float],
    seed: int,
    video_of: dict[str, str] | None = None,
    honour_fixed: bool = True,
) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """Return (clip_id -> split, warnings, rejected clip_id -> reason). Deterministic for the same input.

    `video_of` names each clip's video file, the same name for clips whose files are the same. Clips of one video
    whose fixed `split`s differ are rejected: no split could hold them all. `honour_fixed=False` (the zero-shot
    split) ignores every fixed `split` and says how many there were.
    """
    unknown = set(ratios) - set(SPLIT_NAMES)
    if unknown or not ratios or sum(ratios.values()) <= 0 or min(ratios.values()) < 0:
        raise ValueError(f"split ratios must give non-negative weights for {SPLIT_NAMES}, got {dict(ratios)}")
    total = sum(ratios.values())
    fractions = {name: ratios.get(name, 0.0) / total for name in SPLIT_NAMES}
    video_of = video_of or {}
    warnings = []
    if not honour_fixed:
        fixed = Counter(clip.split for clip in clips if clip.split is not None)
        if fixed:
            warnings.append(
                f"{sum(fixed.values())} clips had a fixed split in the label file "
                f"({', '.join(f'{k} {v}' for k, v in sorted(fixed.items()))}); this split policy ignores it"
            )
        clips = [clip.model_copy(update={"split": None}) if clip.split is not None else clip for clip in clips]
    rejected = _videos_in_two_fixed_splits(clips, video_of)
    clips = [clip for clip in clips if clip.clip_id not in rejected]
    warnings += _shared_video_warnings(clips, video_of)
    groups = _units(clips, video_of)

    assignment: dict[str, str] = {}
    counts: dict[str, Counter] = {name: Counter() for name in SPLIT_NAMES}
    free_groups = []
    for key, members in groups.items():
        fixed = Counter(c.split for c in members if c.split is not None)
        if not fixed:
            free_groups.append(key)
            continue
        group_split = fixed.most_common(1)[0][0]
        if len(fixed) > 1:
            warnings.append(
                f"group {key!r} has clips in several fixed splits {dict(fixed)}: near-duplicates may "
                f"straddle splits; clips without a split go to {group_split!r}"
            )
        # A clip without a split follows a fixed clip of its own video first: the same footage stays in one split.
        video_split = {video_of[c.clip_id]: c.split for c in members if c.split and c.clip_id in video_of}
        for clip in members:
            split = clip.split or video_split.get(video_of.get(clip.clip_id)) or group_split
            assignment[clip.clip_id] = split
            counts[split][clip.label] += 1

    label_totals = Counter(clip.label for clip in clips)
    # Big groups first (they are the hardest to place), then a seeded shuffle so order carries no bias.
    free_groups.sort(key=lambda key: (-len(groups[key]), _hash(seed, key)))
    for key in free_groups:
        members = groups[key]
        majority = Counter(c.label for c in members).most_common(1)[0][0]
        # The split furthest below its share of this label; ties go to the earlier split name.
        split = max(
            SPLIT_NAMES,
            key=lambda s: (
                fractions[s] * label_totals[majority] - counts[s][majority] if fractions[s] > 0 else float("-inf")
            ),
        )
        for clip in members:
            assignment[clip.clip_id] = split
            counts[split][clip.label] += 1
    return assignment, warnings, rejected


def _units(clips: list[ClipLabel], video_of: dict[str, str]) -> dict[str, list[ClipLabel]]:
    """Clips that must share a split, keyed by a group name where they have one: same group or same video, linked
    transitively (a video shared by two groups joins them)."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    def rank(key: str) -> int:  # the unit keeps a group's name when it has one (warnings name it, seeds hash it)
        return 0 if key.startswith("\0video:") else 1 if key.startswith("\0clip:") else 2

    def own_key(clip: ClipLabel) -> str:
        return clip.group if clip.group is not None else f"\0clip:{clip.clip_id}"

    for clip in clips:
        if clip.clip_id in video_of:
            a, b = root(own_key(clip)), root(f"\0video:{video_of[clip.clip_id]}")
            if a != b:
                low, high = sorted((a, b), key=rank)
                parent[low] = high
    units: dict[str, list[ClipLabel]] = defaultdict(list)
    for clip in clips:
        units[root(own_key(clip))].append(clip)
    return units


def _by_video(clips: list[ClipLabel], video_of: dict[str, str]) -> dict[str, list[ClipLabel]]:
    by_video: dict[str, list[ClipLabel]] = defaultdict(list)
    for clip in clips:
        if clip.clip_id in video_of:
            by_video[video_of[clip.clip_id]].append(clip)
    return by_video


def _videos_in_two_fixed_splits(clips: list[ClipLabel], video_of: dict[str, str]) -> dict[str, str]:
    rejected = {}
    for video, members in _by_video(clips, video_of).items():
        if len({c.split for c in members if c.split is not None}) > 1:
            listing = ", ".join(f"{c.clip_id} ({c.split or 'no split'})" for c in members)
            for clip in members:
                rejected[clip.clip_id] = (
                    f"video {video} is used by clips in several fixed splits: {listing}; one "
                    "video cannot be in two splits: give these clips the same split, or none"
                )
    return rejected


def _shared_video_warnings(clips: list[ClipLabel], video_of: dict[str, str]) -> list[str]:
    warnings = []
    for video, members in _by_video(clips, video_of).items():
        # Clips of one video in one group were already kept together: nothing to tell.
        if len(members) > 1 and (members[0].group is None or len({c.group for c in members}) > 1):
            names = ", ".join(c.clip_id for c in members[:5]) + (", ..." if len(members) > 5 else "")
            warnings.append(
                f"video {video} is used by {len(members)} clips ({names}): they are kept in one split, as one group"
            )
    return warnings


def _hash(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
