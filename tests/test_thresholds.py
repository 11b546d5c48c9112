"""The threshold policy: the model's own answer first; a tuned threshold only from clips the metric does not count."""

import numpy as np
import pytest

from ghostprobe.metrics import choose_threshold, tuned_threshold
from ghostprobe.metrics.thresholds import crossfit, fold_of


def scores(n_pos, n_neg, seed=0, skill=1.0):
    rng = np.random.default_rng(seed)
    y = np.array([True] * n_pos + [False] * n_neg)
    p = 1 / (1 + np.exp(-(skill * (2 * y - 1) + rng.normal(0, 1.0, len(y)) - 1.5)))  # biased low: 0.5 is not best
    return y, p


def test_a_seven_clip_val_split_is_refused_and_says_why():
    y, p = scores(20, 27)
    y_val, p_val = scores(3, 4, seed=1)
    result = tuned_threshold(y, p, [f"c{k}" for k in range(len(y))], y_val, p_val, policy="val")
    assert not result["available"]
    assert result["reason"] == (
        "the val split has 7 scored clips (3 ghost probing, 4 not); a threshold needs at least "
        "metrics.min_val_clips=30 with metrics.min_val_per_class=5 of each class"
    )


def test_a_one_class_val_split_is_refused_not_silently_replaced_by_the_default():
    y, p = scores(20, 27)
    y_val, p_val = scores(0, 40, seed=1)
    result = tuned_threshold(y, p, [f"c{k}" for k in range(len(y))], y_val, p_val, policy="val")
    assert not result["available"] and "(0 ghost probing, 40 not)" in result["reason"]


def test_a_large_enough_val_split_gives_the_second_result():
    y, p = scores(30, 30)
    y_val, p_val = scores(20, 20, seed=1)
    result = tuned_threshold(y, p, [f"c{k}" for k in range(len(y))], y_val, p_val)
    assert result["available"] and result["source"] == "val"
    assert result["threshold"] == choose_threshold(y_val, p_val)["threshold"]
    predicted = p >= result["threshold"]
    assert result["metrics"]["accuracy_nan_as_wrong"] == pytest.approx((predicted == y).mean())


def test_cross_fitting_never_scores_a_clip_at_a_threshold_chosen_on_itself():
    y, p = scores(25, 35, seed=3)
    ids = [f"clip{k:02d}" for k in range(len(y))]
    result = tuned_threshold(y, p, ids, None, None)  # auto without val: cross-fitted
    assert result["available"] and result["source"] == "crossfit" and result["refused"] == ["no val split"]
    folds = {f["fold"]: f["threshold"] for f in result["folds"]}
    fold = np.array([result["clip_folds"][c] for c in ids])
    for f, threshold in folds.items():
        others = fold != f
        assert threshold == choose_threshold(y[others], p[others])["threshold"]  # chosen without fold f's clips
    predicted = np.array([p[k] >= folds[fold[k]] for k in range(len(y))])
    assert result["metrics"]["accuracy_nan_as_wrong"] == pytest.approx((predicted == y).mean())
    # the folds are stratified: every fold holds both classes
    assert all(y[fold == f].any() and (~y[fold == f]).any() for f in folds)


def test_windows_of_one_clip_share_a_fold():
    ids = [f"clip{k // 3}" for k in range(30)]
    y = np.array([k // 3 % 2 == 0 for k in range(30)])
    fold = fold_of(ids, y, 5)
    for clip in set(ids):
        assert len({fold[k] for k, c in enumerate(ids) if c == clip}) == 1


def test_cross_fitting_refuses_a_test_split_too_small_for_its_folds():
    y, p = scores(4, 20)
    result = crossfit(y, p, [f"c{k}" for k in range(len(y))], 5, "balanced_accuracy", 30, 5)
    assert not result["available"] and "other folds have" in result["reason"]
