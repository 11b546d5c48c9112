"""Paired comparisons: McNemar by hand, alignment errors that name clips, paired bootstrap of the AUROC difference."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ghostprobe.metrics import compare_decisions, mcnemar_test, paired_bootstrap_auroc, to_jsonable


def test_mcnemar_exact_and_chi2_by_hand():
    r = mcnemar_test(10, 2)
    # Exact: 2 * P(X <= 2 | n=12, 1/2) = 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * 79 / 4096 = 0.0386.
    assert r["p_exact"] == pytest.approx(2 * 79 / 4096)
    assert round(r["p_exact"], 4) == 0.0386
    # Chi-square with continuity correction: (|10 - 2| - 1)^2 / 12 = 49/12; 1 df: p = erfc(sqrt(x / 2)).
    assert r["chi2_cc"] == pytest.approx(49 / 12)
    assert r["p_chi2_cc"] == pytest.approx(math.erfc(math.sqrt(49 / 12 / 2)))
    assert r["recommended"] == "exact" and r["p_value"] == r["p_exact"]  # 12 discordant < 25


def test_mcnemar_symmetric_empty_and_large():
    assert mcnemar_test(5, 5)["p_exact"] == 1.0  # 2 * P(X <= 5 | 10) = 2 * 0.623 -> capped at 1
    empty = mcnemar_test(0, 0)
    assert empty["p_exact"] == 1.0 and math.isnan(empty["p_chi2_cc"])
    large = mcnemar_test(30, 10)
    assert large["recommended"] == "chi2_cc" and large["p_value"] == large["p_chi2_cc"]
    assert large["p_chi2_cc"] == pytest.approx(math.erfc(math.sqrt((20 - 1) ** 2 / 40 / 2)))
    json.dumps(to_jsonable(empty), allow_nan=False)


def test_compare_decisions_counts_by_hand():
    labels = {"a": True, "b": True, "c": False, "d": False, "e": True, "f": False}
    model_x = {"a": True, "b": True, "c": True, "d": False, "e": None, "f": False}
    model_y = {"a": False, "b": True, "c": False, "d": True, "e": True, "f": False}
    r = compare_decisions(labels, model_x, model_y, names=("x", "y"))
    # e is left out (x gave no answer). a: x right, y wrong; b: both right; c: x wrong, y right; d: x right, y wrong;
    # f: both right -> both right 2, only x 2, only y 1, both wrong 0.
    assert r["excluded_clip_ids"] == ["e"] and r["n"] == 5
    assert (r["both_right"], r["only_x_right"], r["only_y_right"], r["both_wrong"]) == (2, 2, 1, 0)
    assert r["accuracy_x"] == pytest.approx(4 / 5) and r["accuracy_y"] == pytest.approx(3 / 5)
    assert (r["mcnemar"]["b"], r["mcnemar"]["c"]) == (2, 1)


def test_mismatched_clip_sets_name_the_missing_ids():
    labels = {"a": True, "b": False, "c": True}
    with pytest.raises(ValueError) as err:
        compare_decisions(labels, {"a": True, "b": False, "c": True}, {"a": True, "zz": False}, names=("base", "new"))
    message = str(err.value)
    assert "model 'new' has no entry for 2 labelled clips: b, c" in message
    assert "model 'new' has 1 clips that are not labelled: zz" in message
    assert "'base'" not in message


def correlated_scores(seed, n=120, gap=1.0):
    """Labels and two models' scores sharing clip difficulty; model a separates the classes `gap` better."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    difficulty = rng.normal(size=n)
    a = (1.5 + gap) * y + difficulty + 0.5 * rng.normal(size=n)
    b = 1.5 * y + difficulty + 0.5 * rng.normal(size=n)
    ids = [f"clip{i:03d}" for i in range(n)]
    return (
        dict(zip(ids, y.tolist(), strict=True)),
        dict(zip(ids, a.tolist(), strict=True)),
        dict(zip(ids, b.tolist(), strict=True)),
    )


def test_paired_bootstrap_auroc_is_seeded_and_matches_sklearn():
    labels, a, b = correlated_scores(0)
    first = paired_bootstrap_auroc(labels, a, b, n_resamples=500, seed=1)
    assert paired_bootstrap_auroc(labels, a, b, n_resamples=500, seed=1) == first
    assert paired_bootstrap_auroc(labels, a, b, n_resamples=500, seed=2)["ci_low"] != first["ci_low"]
    ids = sorted(labels)
    y = [labels[i] for i in ids]
    assert first["auroc_a"] == pytest.approx(roc_auc_score(y, [a[i] for i in ids]))
    assert first["difference"] == pytest.approx(first["auroc_a"] - first["auroc_b"])
    assert first["ci_low"] <= first["difference"] <= first["ci_high"]
    json.dumps(to_jsonable(first), allow_nan=False)


def test_paired_bootstrap_separates_a_better_model_and_not_a_twin():
    labels, a, b = correlated_scores(3, n=300, gap=1.5)
    better = paired_bootstrap_auroc(labels, a, b, n_resamples=1000)
    assert better["ci_low"] > 0 and better["p_value"] < 0.01
    twin = paired_bootstrap_auroc(labels, a, dict(a), n_resamples=200)
    assert twin["difference"] == 0 and twin["ci_low"] == twin["ci_high"] == 0 and twin["p_value"] == 1.0


def test_paired_bootstrap_excludes_unanswered_and_handles_one_class():
    labels, a, b = correlated_scores(4, n=40)
    a["clip005"] = None
    b["clip007"] = float("nan")
    r = paired_bootstrap_auroc(labels, a, b, n_resamples=100)
    assert r["excluded_clip_ids"] == ["clip005", "clip007"] and r["n"] == 38
    one_class = paired_bootstrap_auroc({"x": True, "y": True}, {"x": 0.1, "y": 0.2}, {"x": 0.3, "y": 0.4})
    assert math.isnan(one_class["difference"]) and "undefined" in one_class["notes"][0]
