"""Metrics: hand-computed cases (arithmetic written out), parity with scikit-learn, the NaN policy, degenerate inputs,
bootstrap behaviour, threshold choice, baselines, groups, earliness, localisation, timing and the decision rule."""

import json
import math
import time

import numpy as np
import pytest
from sklearn import metrics as skm

from ghostprobe.metrics import (
    DecisionRule,
    answers_to_scores,
    bootstrap_ci,
    choose_threshold,
    classification_metrics,
    classification_report,
    clip_scores_from_windows,
    clips_needed,
    decide,
    earliness_metrics,
    format_table,
    group_metrics,
    localisation_metrics,
    prior_baseline,
    proportion_interval,
    rule_action,
    timing_stats,
    to_jsonable,
    trivial_baselines,
)

NAN = float("nan")
# 3 positives, 5 negatives; the last negative has no answer.
HAND_Y = [True, True, True, False, False, False, False, False]
HAND_P = [0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4, NAN]


def strict_json(obj) -> str:
    return json.dumps(to_jsonable(obj), allow_nan=False)


def random_case(seed, n=None, nan_fraction=0.0):
    rng = np.random.default_rng(seed)
    n = n or int(rng.integers(20, 200))
    y = rng.random(n) < rng.uniform(0.2, 0.8)
    # Rounded to one decimal so that tied scores (and their handling) are exercised.
    p = np.round(np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1), 1)
    p[rng.random(n) < nan_fraction] = np.nan
    return y, p


# --- classification: hand case -------------------------------------------------------------------------------------


def test_hand_case_every_metric():
    m = classification_metrics(HAND_Y, HAND_P, threshold=0.5)
    # Scored: 7 clips (3 pos, 4 neg). Yes at p >= 0.5: 0.9 (pos), 0.6 (pos), 0.7 (neg) -> TP 2, FP 1; FN 1 (0.3);
    # TN 3 (0.2, 0.1, 0.4).
    assert m["confusion"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 2}
    assert (m["n"], m["n_scored"], m["n_missing"], m["n_positive"], m["n_negative"]) == (8, 7, 1, 3, 4)
    assert m["coverage"] == pytest.approx(7 / 8)
    assert m["accuracy"] == pytest.approx(5 / 7)  # (TP + TN) / scored
    assert m["accuracy_nan_as_wrong"] == pytest.approx(5 / 8)  # the unanswered clip is an error
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["fpr"] == pytest.approx(1 / 4)
    assert m["fnr"] == pytest.approx(1 / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)  # 17/24
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # 2/3
    assert m["mcc"] == pytest.approx((2 * 3 - 1 * 1) / math.sqrt(3 * 3 * 4 * 4))  # 5/12
    # AUROC: positive 0.9 beats all 4 negatives, 0.6 beats 3 (0.2, 0.1, 0.4), 0.3 beats 2 -> 9 of 12 pairs.
    assert m["auroc"] == pytest.approx(9 / 12)
    # AP: descending 0.9(+) P=1, 0.7(-), 0.6(+) P=2/3, 0.4(-), 0.3(+) P=3/5 -> (1 + 2/3 + 3/5) / 3 = 34/45.
    assert m["auprc"] == pytest.approx(34 / 45)
    # ECE, 10 bins: one clip per bin, gaps |y - p|: .1 + .4 + .7 + .7 + .2 + .1 + .4 = 2.6, over 7 clips.
    assert m["ece"] == pytest.approx(2.6 / 7)
    assert m["notes"] == []


def test_ece_two_bins_by_hand():
    # Bin [0, .5): scores .3 .2 .1 .4 (1 positive) -> mean y 1/4, mean p 1.0/4: gap 0.
    # Bin [.5, 1]: scores .9 .6 .7 (2 positives) -> sum y 2, sum p 2.2: weighted gap |2 - 2.2| / 7.
    m = classification_metrics(HAND_Y, HAND_P, n_bins=2)
    assert m["ece"] == pytest.approx(0.2 / 7)
    assert [b["n"] for b in m["calibration_bins"]] == [4, 3]
    assert m["calibration_bins"][1]["fraction_positive"] == pytest.approx(2 / 3)


def test_score_exactly_at_threshold_is_yes_and_one_goes_in_last_bin():
    m = classification_metrics([True, False], [0.5, 1.0], threshold=0.5, n_bins=4)
    assert m["confusion"] == {"tn": 0, "fp": 1, "fn": 0, "tp": 1}
    assert m["calibration_bins"][-1] == {"low": 0.75, "high": 1.0, "n": 1, "mean_score": 1.0, "fraction_positive": 0.0}


# --- classification: parity with scikit-learn --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_matches_sklearn_on_random_data(seed):
    y, p = random_case(seed)
    threshold = [0.5, 0.3, 0.7][seed % 3]
    m = classification_metrics(y, p, threshold)
    pred = p >= threshold
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["auprc"] == pytest.approx(skm.average_precision_score(y, p))
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert m["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


@pytest.mark.parametrize("seed", range(3))
def test_nan_scores_are_left_out_never_read_as_no(seed):
    y, p = random_case(seed, n=150, nan_fraction=0.2)
    scored = ~np.isnan(p)
    m = classification_metrics(y, p)
    # Metrics equal sklearn's on the scored subset ...
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y[scored], p[scored] >= 0.5))
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y[scored], p[scored]))
    assert m["auprc"] == pytest.approx(skm.average_precision_score(y[scored], p[scored]))
    # ... and differ from what reading NaN as "no" (score 0) would give.
    as_no = np.where(scored, p, 0.0)
    assert m["confusion"]["tn"] < skm.confusion_matrix(y, as_no >= 0.5).ravel()[0]
    assert m["coverage"] == pytest.approx(scored.mean())
    assert m["accuracy_nan_as_wrong"] == pytest.approx(((p[scored] >= 0.5) == y[scored]).sum() / len(y))


def test_missing_clip_ids_are_named_and_none_reads_as_nan():
    m = classification_metrics([True, False, True], [0.8, None, None], clip_ids=["a", "b", "c"])
    assert m["missing_clip_ids"] == ["b", "c"]
    assert m["n_missing"] == 2
    # The same through numpy object arrays (what a DataFrame column with None becomes).
    as_arrays = classification_metrics(np.array([True, False, True], dtype=object), np.array([0.8, None, None]))
    assert as_arrays["n_missing"] == 2 and as_arrays["recall"] == 1.0


# --- classification: degenerate inputs ----------------------------------------------------------------------------


def test_one_class_gives_nan_auroc_with_a_note_not_a_crash():
    m = classification_metrics([True, True, True], [0.9, 0.2, 0.7])
    assert math.isnan(m["auroc"]) and math.isnan(m["balanced_accuracy"]) and math.isnan(m["fpr"])
    assert m["recall"] == pytest.approx(2 / 3)
    assert any("AUROC" in note and "only positives" in note for note in m["notes"])
    neg = classification_metrics([False, False], [0.9, 0.2])
    assert math.isnan(neg["auroc"]) and math.isnan(neg["auprc"]) and neg["fpr"] == 0.5
    assert any("only negatives" in note for note in neg["notes"])
    strict_json(m), strict_json(neg)


def test_all_nan_and_empty_inputs():
    m = classification_metrics([True, False], [NAN, NAN])
    assert m["coverage"] == 0 and m["accuracy_nan_as_wrong"] == 0 and math.isnan(m["accuracy"])
    assert "no clip has a score" in m["notes"][0]
    empty = classification_metrics([], [])
    assert empty["n"] == 0 and math.isnan(empty["accuracy"])


def test_no_predicted_positive_makes_precision_nan_with_note():
    m = classification_metrics([True, False], [0.1, 0.2])
    assert math.isnan(m["precision"]) and m["recall"] == 0 and m["f1"] == 0
    assert any("precision is undefined" in note for note in m["notes"])


def test_scores_outside_unit_interval_leave_ece_undefined():
    m = classification_metrics([True, False], [3.0, -1.0], threshold=0.0)
    assert math.isnan(m["ece"]) and m["auroc"] == 1.0
    assert any("ECE" in note for note in m["notes"])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="missing labels"):
        classification_metrics([True, None], [0.1, 0.2])
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        classification_metrics([True, False], [0.1])
    with pytest.raises(ValueError, match="infinite"):
        classification_metrics([True, False], [0.1, np.inf])
    with pytest.raises(ValueError, match="bool or 0/1"):
        classification_metrics([2, 0], [0.1, 0.2])


# --- bootstrap ----------------------------------------------------------------------------------------------------


def test_bootstrap_contains_estimate_narrows_with_data_and_is_seeded():
    y_small, p_small = random_case(0, n=60)
    y_big, p_big = random_case(0, n=1200)
    small = bootstrap_ci(y_small, p_small, n_resamples=500, seed=3)
    big = bootstrap_ci(y_big, p_big, n_resamples=500, seed=3)
    for name in ("accuracy", "balanced_accuracy", "f1", "fpr", "auroc", "auprc", "mcc"):
        for ci in (small, big):
            interval = ci["intervals"][name]
            assert interval["low"] <= interval["estimate"] <= interval["high"], name
        width = {k: c["intervals"][name]["high"] - c["intervals"][name]["low"] for k, c in (("s", small), ("b", big))}
        assert width["b"] < width["s"] / 2, name  # 20x the clips -> ~4.5x narrower
    assert bootstrap_ci(y_small, p_small, n_resamples=500, seed=3) == small
    assert bootstrap_ci(y_small, p_small, n_resamples=500, seed=4) != small


def test_bootstrap_point_estimates_equal_classification_metrics():
    y, p = random_case(5, n=80, nan_fraction=0.1)
    ci = bootstrap_ci(y, p, threshold=0.4, n_resamples=50)
    m = classification_metrics(y, p, threshold=0.4)
    for name, interval in ci["intervals"].items():
        assert interval["estimate"] == pytest.approx(m[name], nan_ok=True), name
    assert ci["intervals"]["coverage"]["low"] < 1  # unscored clips are resampled too


def test_bootstrap_counts_undefined_resamples():
    # 1 positive in 30 clips: many resamples draw no positive, so AUROC is undefined there and counted.
    y = np.zeros(30, bool)
    y[0] = True
    ci = bootstrap_ci(y, np.linspace(0, 1, 30), n_resamples=200)
    assert 0 < ci["intervals"]["auroc"]["n_undefined"] < 200
    assert ci["intervals"]["accuracy"]["n_undefined"] == 0


def test_bootstrap_1000_resamples_of_100_clips_is_fast():
    y, p = random_case(1, n=100)
    start = time.perf_counter()
    bootstrap_ci(y, p, n_resamples=1000)
    assert time.perf_counter() - start < 1.0


# --- threshold choice ---------------------------------------------------------------------------------------------


def test_choose_threshold_by_hand_with_tie_break():
    y, p = [False, False, True, True], [0.1, 0.4, 0.35, 0.8]
    # Candidates (yes at p >= c): .8 -> TPR .5 FPR 0 (BA .75); .4 -> .5/.5 (.5); .35 -> 1/.5 (.75); .1 -> 1/1 (.5).
    # Tie .8 vs .35: thresholds are midpoints (.8+.4)/2 = .6 and (.35+.1)/2 = .225; .6 is nearer 0.5.
    chosen = choose_threshold(y, p)
    assert chosen["threshold"] == pytest.approx(0.6) and chosen["value"] == pytest.approx(0.75)
    assert chosen["source"] == "val"
    assert choose_threshold(y, p, "youden")["threshold"] == pytest.approx(0.6)  # J = 2 BA - 1: same argmax
    # F1: .8 -> 2/(2+0+1) = .667; .35 -> 4/(4+1+0) = .8; .1 -> 4/(4+2) = .667 -> .35, threshold .225.
    assert choose_threshold(y, p, "f1")["threshold"] == pytest.approx(0.225)


def test_choose_threshold_falls_back_and_reads_answers():
    fallback = choose_threshold([True, True], [0.2, 0.9])
    assert fallback["threshold"] == 0.5 and fallback["source"] == "default" and "0 scored negatives" in fallback["note"]
    assert choose_threshold([True, False], [NAN, NAN], default=0.3)["threshold"] == 0.3
    scores = answers_to_scores([True, False, None, True, False])
    assert np.array_equal(scores, [1.0, 0.0, NAN, 1.0, 0.0], equal_nan=True)
    assert choose_threshold([True, False, True, True, False], scores)["threshold"] == 0.5
    with pytest.raises(ValueError, match="unknown threshold criterion"):
        choose_threshold([True, False], [0.1, 0.2], "auc")


def test_chosen_threshold_maximises_balanced_accuracy_on_random_val():
    y, p = random_case(7, n=120)
    chosen = choose_threshold(y, p)
    best = max(skm.balanced_accuracy_score(y, p >= t) for t in np.unique(p))
    assert skm.balanced_accuracy_score(y, p >= chosen["threshold"]) == pytest.approx(best)


# --- baselines, groups, report ------------------------------------------------------------------------------------


def test_baselines_by_hand():
    y = [True] * 3 + [False] * 5  # pi = 3/8
    b = trivial_baselines(y)
    assert b["always_yes"]["accuracy"] == pytest.approx(3 / 8)
    assert b["always_yes"]["f1"] == pytest.approx(2 * 3 / (2 * 3 + 5))  # = 2 pi / (1 + pi) = 6/11
    assert b["always_yes"]["fpr"] == 1 and b["always_yes"]["recall"] == 1
    assert b["always_no"]["accuracy"] == pytest.approx(5 / 8) and b["always_no"]["recall"] == 0
    assert math.isnan(b["always_no"]["precision"])
    assert b["prior"]["accuracy"] == pytest.approx((3 / 8) ** 2 + (5 / 8) ** 2)  # 34/64
    assert b["prior"]["recall"] == b["prior"]["fpr"] == b["prior"]["precision"] == pytest.approx(3 / 8)
    assert b["prior"]["auroc"] == 0.5 and b["prior"]["mcc"] == 0


def test_always_yes_f1_on_the_dada_split_is_the_published_gpt4o_number():
    # 101 clips, 54 positive: F1 = 2*54 / (2*54 + 47) = 108/155 = 0.697 -> "0.70".
    b = trivial_baselines([True] * 54 + [False] * 47)
    assert round(b["always_yes"]["f1"], 2) == 0.70


def test_prior_baseline_expectations_match_simulation():
    rng = np.random.default_rng(0)
    y = np.array([True] * 30 + [False] * 70)
    says_yes = rng.random((20000, len(y))) < 0.3
    analytic = prior_baseline(y)
    assert (says_yes == y).mean() == pytest.approx(analytic["accuracy"], abs=0.003)
    assert says_yes[:, y].mean() == pytest.approx(analytic["recall"], abs=0.003)
    assert says_yes[:, ~y].mean() == pytest.approx(analytic["fpr"], abs=0.003)


def test_group_breakdown_reports_what_each_group_can_measure():
    y = [True, True, False, False, False, True]
    p = [0.9, 0.2, 0.7, 0.1, 0.3, NAN]
    label = ["ghost_probing", "ghost_probing", "cut_in", "cut_in", "normal", "ghost_probing"]
    by_label = group_metrics(y, p, label)
    assert by_label["cut_in"]["kind"] == "negatives_only"
    assert by_label["cut_in"]["fpr"] == 0.5 and by_label["cut_in"]["specificity"] == 0.5  # 0.7 says yes, 0.1 no
    assert "recall" not in by_label["cut_in"]
    assert by_label["ghost_probing"]["kind"] == "positives_only"
    assert by_label["ghost_probing"]["recall"] == 0.5 and by_label["ghost_probing"]["coverage"] == pytest.approx(2 / 3)
    assert "fpr" not in by_label["ghost_probing"]
    light = group_metrics(y, p, ["day", "day", "day", "night", None, NAN], n_resamples=100)  # NaN: pandas' None
    assert set(light) == {"day", "night", "unknown"}
    assert light["day"]["kind"] == "both" and light["day"]["ci"]["accuracy"][0] <= light["day"]["accuracy"]


def test_report_is_strict_json_and_table_lists_baselines():
    y, p = random_case(2, n=60, nan_fraction=0.05)
    report = classification_report(
        y, p, 0.5, clip_ids=[f"c{i}" for i in range(60)], groups={"light": ["day", "night"] * 30}, n_resamples=200
    )
    text = strict_json(report)
    assert json.loads(text)["model"]["n"] == 60
    table = format_table({"model": report["model"], **report["baselines"]})
    lines = table.splitlines()
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["model", "always_yes", "always_no", "prior"]
    assert " - " in lines[4]  # always-no precision is undefined and printed as "-"


# --- timing -------------------------------------------------------------------------------------------------------


def test_timing_by_hand():
    t = timing_stats([10, 20, 30, 40, None], n_gpus=2, price_per_gpu_hour=3.0)
    assert t["n_failed"] == 1
    assert t["latency_p50_s"] == 25  # median of 10, 20, 30, 40
    assert t["latency_p95_s"] == pytest.approx(38.5)  # linear: position 0.95 * 3 = 2.85 -> 30 + 0.85 * 10
    assert t["latency_max_s"] == 40
    assert t["wall_s"] == 100 and t["clips_per_s"] == pytest.approx(5 / 100)
    assert t["gpu_seconds"] == 200 and t["gpu_cost_usd"] == pytest.approx(200 / 3600 * 3.0)
    measured = timing_stats([10, 20], wall_s=12.0)
    assert measured["clips_per_s"] == pytest.approx(2 / 12) and math.isnan(measured["gpu_cost_usd"])
    strict_json(measured)


# --- earliness ----------------------------------------------------------------------------------------------------

# Clip a (positive, event at 2.5 s): windows ending 1, 2 count; the one ending 3 shows the event and does not.
# Clip b (positive, event at 3.0 s), clip c (negative): every window counts.
EARLY_WINDOWS = [
    ("a", 1.0, 0.1),
    ("a", 2.0, 0.6),
    ("a", 3.0, 0.95),
    ("b", 1.0, 0.7),
    ("b", 2.0, 0.2),
    ("c", 1.0, 0.3),
    ("c", 2.0, 0.4),
]
EARLY_CLIPS = {"a": (True, 2.5), "b": (True, 3.0), "c": (False, None)}


def test_earliness_by_hand():
    e = earliness_metrics(EARLY_WINDOWS, EARLY_CLIPS)
    # Clip maxima over counted windows: a .6, b .7, c .4 (a's .95 comes after its event).
    # th .7: b flagged at 1 s -> TTA 3 - 1 = 2; recall 1/2, precision 1.
    # th .6: a flagged at 2 s -> TTA 0.5; mean (2 + 0.5) / 2 = 1.25; recall 1, precision 1.
    # th .4: c flagged too -> precision 2/3.  th .1: a's first alert moves to 1 s -> mean (1.5 + 2) / 2 = 1.75.
    curve = {round(pt["threshold"], 2): pt for pt in e["curve"]}
    assert curve[0.7]["mean_tta_s"] == 2 and curve[0.7]["recall"] == 0.5
    assert curve[0.6]["mean_tta_s"] == 1.25 and curve[0.4]["precision"] == pytest.approx(2 / 3)
    assert curve[0.1]["mean_tta_s"] == 1.75 and 0.95 not in curve
    assert e["ap"] == 1.0  # 0.5 * 1 + 0.5 * 1
    assert e["mtta_s"] == pytest.approx(0.5 * 2 + 0.5 * 1.25)  # TTA weighted by recall gained: 1.625
    assert e["mtta_max_per_recall_s"] == pytest.approx((2 + 1.75) / 2)  # max TTA per recall level (.5, 1): 1.875
    assert e["tta_at_recall_target_s"] == 1.25 and e["threshold_at_recall_target"] == 0.6
    assert e["precision_at_recall_target"] == 1.0
    assert clip_scores_from_windows(EARLY_WINDOWS, EARLY_CLIPS) == {"a": 0.6, "b": 0.7, "c": 0.4}
    strict_json(e)


def test_earliness_exclusions_and_window_at_event():
    windows = EARLY_WINDOWS + [
        ("d", 3.0, 0.8),
        ("e", 1.0, 0.9),
        {"clip_id": "f", "window_end_s": 2.0, "p": 0.9},
        ("g", 1.0, None),
    ]
    clips = {
        **EARLY_CLIPS,
        "d": (True, 2.0),
        "e": (True, None),
        "f": (True, 2.0),
        "g": (False, None),
        "h": (False, None),
    }
    e = earliness_metrics(windows, clips)
    assert e["excluded"] == {
        "d": "no scored window before the event",
        "e": "positive clip without t_event_s",
        "g": "no scored window",
        "h": "no windows",
    }
    assert e["n_positive"] == 3  # a, b and f, whose window ends exactly at the event (TTA 0)
    assert e["curve"][0]["threshold"] == 0.9 and e["curve"][0]["mean_tta_s"] == 0.0
    with pytest.raises(ValueError, match="no label: zz"):
        earliness_metrics([("zz", 1.0, 0.5)], EARLY_CLIPS)


@pytest.mark.parametrize("max_thresholds", [2000, 5])
def test_earliness_ap_equals_sklearn_on_clip_maxima(max_thresholds):
    rng = np.random.default_rng(11)
    windows, clips = [], {}
    for i in range(40):
        positive = bool(rng.random() < 0.5)
        clips[f"c{i}"] = (positive, 6.0 if positive else None)
        for end in np.arange(1.0, 9.0):
            windows.append((f"c{i}", end, float(rng.random() * (0.5 + 0.5 * positive * end / 8))))
    e = earliness_metrics(windows, clips, max_thresholds=max_thresholds)
    scores = clip_scores_from_windows(windows, clips)
    ids = sorted(scores)
    assert e["ap"] == pytest.approx(skm.average_precision_score([clips[i][0] for i in ids], [scores[i] for i in ids]))
    # the first counted window ends at 1 s, the event is at 6 s
    assert 0 <= e["mtta_s"] <= 5.0 and 0 <= e["mtta_max_per_recall_s"] <= 5.0


def test_earliness_without_positives_or_reaching_recall():
    none = earliness_metrics([("c", 1.0, 0.3)], {"c": (False, None)})
    assert math.isnan(none["ap"]) and "undefined" in none["notes"][0]
    low = earliness_metrics(EARLY_WINDOWS, EARLY_CLIPS, recall_target=1.01)
    assert math.isnan(low["tta_at_recall_target_s"]) and any("never reaches" in n for n in low["notes"])


# --- event-time localisation --------------------------------------------------------------------------------------


def test_localisation_by_hand():
    # Errors: |1.0 - 1.5| = .5, |5.5 - 4.0| = 1.5, |0.3 - 1.3| = 1.0 (the 1 s boundary is a hit); one missing
    # prediction; one clip without a labelled time (left out).
    m = localisation_metrics([1.0, None, 5.5, 0.3, 3.0], [1.5, 2.0, 4.0, 1.3, None], clip_ids=list("abcde"))
    assert (m["n_labelled"], m["n_predicted"], m["n_missing_pred"], m["n_unlabelled"]) == (4, 3, 1, 1)
    assert m["missing_clip_ids"] == ["b"]
    assert m["mae_s"] == pytest.approx((0.5 + 1.5 + 1.0) / 3) and m["median_abs_error_s"] == pytest.approx(1.0)
    assert m["hit_rate_within_1s"] == pytest.approx(2 / 3) and m["hit_rate_within_1s_missing_as_miss"] == 0.5
    assert m["hit_rate_within_2s"] == 1.0 and m["hit_rate_within_2s_missing_as_miss"] == 0.75


# --- decision rule ------------------------------------------------------------------------------------------------


def answers(n_correct, n=10, n_pos=5, missing=0, spread_errors=False):
    """n clips, n_pos positives; the model is right on n_correct clips, unanswered on the last `missing`.
    The errors fall on the last clips (the negatives), or with `spread_errors` spread over both classes in
    proportion to their sizes (the first clips of each class are the wrong ones)."""
    y = np.array([True] * n_pos + [False] * (n - n_pos))
    right = np.ones(n, bool)
    n_wrong = n - n_correct
    if spread_errors:
        wrong_pos = round(n_wrong * n_pos / n)
        right[:wrong_pos] = False
        right[n_pos : n_pos + n_wrong - wrong_pos] = False
    else:
        right[n_correct:] = False
    p = np.where(right == y, 0.9, 0.1)
    if missing:
        p[n - missing :] = np.nan
    return y, p


@pytest.mark.parametrize("successes, n", [(0, 6), (5, 6), (6, 6), (1, 1), (92, 100), (70, 300), (537, 1000)])
@pytest.mark.parametrize("method", ["exact", "wilson"])
def test_proportion_intervals_equal_scipys(successes, n, method):
    from scipy.stats import binomtest

    from ghostprobe.metrics.intervals import _bounds

    ours = proportion_interval(successes, n, method=method)
    theirs = binomtest(successes, n).proportion_ci(confidence_level=0.95, method=method)
    assert (ours["low"], ours["high"]) == (pytest.approx(theirs.low), pytest.approx(theirs.high))
    low, high = _bounds(np.array([successes]), np.array([n]), 0.95, method)  # the vectorised form clips_needed uses
    assert (low[0], high[0]) == (pytest.approx(theirs.low, abs=1e-9), pytest.approx(theirs.high, abs=1e-9))
    assert math.isnan(proportion_interval(0, 0)["low"])


def test_five_of_six_is_inconclusive_and_says_how_many_clips_would_settle_it():
    y, p = answers(5, n=6, n_pos=3)
    d = decide(y, p)
    assert d.action == "inconclusive"
    assert d.spans == ["fine-tune", "optimise", "deploy"]
    assert (d.accuracy_interval["low"], d.accuracy_interval["high"]) == (
        pytest.approx(0.3588, abs=1e-4),
        pytest.approx(0.9958, abs=1e-4),
    )
    assert d.clips_needed == {"line": 0.8, "n": clips_needed(5 / 6, 0.8)}  # 83% points to deploy: the 80% line
    assert d.accuracy_target["status"] == "uncertain"
    assert "spans fine-tune, optimise and deploy -> inconclusive" in d.reason
    assert (
        f"About {d.clips_needed['n']} clips at this accuracy would settle it (the interval clearing the 80% line)"
        in d.reason
    )
    # 70% points to optimise: the interval must clear both lines, and the harder one counts
    seventy = decide(*answers(14, n=20, n_pos=10, spread_errors=True)).clips_needed
    assert seventy["n"] == max(clips_needed(0.7, 0.6), clips_needed(0.7, 0.8))
    assert "label more clips" in d.next_steps
    strict_json(d.to_dict())


def test_92_of_100_beating_the_baseline_deploys():
    y, p = answers(92, n=100, n_pos=60, spread_errors=True)  # 5 positives and 3 negatives wrong
    d = decide(y, p)
    assert d.action == "deploy" and d.accuracy_interval["low"] > 0.8
    assert d.baseline_test["baseline"] == "always_yes" and d.baseline_test["baseline_accuracy"] == 0.6
    assert d.beats_baselines and d.baseline_test["p_value"] < 1e-6
    assert d.fpr_check["passed"] and d.fpr_check["estimate"] == pytest.approx(3 / 40)
    assert d.next_steps == "deploy zero-shot; no training needed"


@pytest.mark.parametrize(
    "n_correct, n, action",
    [(70, 300, "fine-tune"), (700, 1000, "optimise"), (66, 100, "inconclusive"), (92, 100, "deploy")],
)
def test_each_branch(n_correct, n, action):
    y, p = answers(n_correct, n=n, n_pos=n // 2, spread_errors=True)
    d = decide(y, p)
    assert d.action == action, d.reason
    low, high = d.accuracy_interval["low"], d.accuracy_interval["high"]
    assert {"fine-tune": high < 0.6, "optimise": 0.6 <= low and high <= 0.8, "deploy": low > 0.8, "inconclusive": True}[
        action
    ]


def test_boundaries_of_the_interval_gates():
    from scipy.stats import binomtest

    n = 400
    low = [binomtest(k, n).proportion_ci().low for k in range(n + 1)]
    first_above = next(k for k in range(n + 1) if low[k] > 0.8)  # the fewest right answers whose interval clears 80%
    for k, action in ((first_above, "deploy"), (first_above - 1, "inconclusive")):
        y, p = answers(k, n=n, n_pos=200, spread_errors=True)
        assert decide(y, p).action == action
    high = [binomtest(k, n).proportion_ci().high for k in range(n + 1)]
    last_below = max(k for k in range(n + 1) if high[k] < 0.6)
    for k, action in ((last_below, "fine-tune"), (last_below + 1, "inconclusive")):
        y, p = answers(k, n=n, n_pos=200, spread_errors=True)
        assert decide(y, p).action == action


def test_an_always_yes_like_model_on_a_mostly_positive_set_is_never_deployed():
    for n_pos, n_neg, right_negatives in ((170, 30, 0), (1700, 300, 0), (1700, 300, 5)):
        y = np.array([True] * n_pos + [False] * n_neg)
        p = np.full(len(y), 0.9)
        p[n_pos : n_pos + right_negatives] = 0.1
        for max_fpr in (0.2, None):
            d = decide(y, p, rule=DecisionRule(max_fpr=max_fpr))
            assert d.action == "inconclusive", (n_pos, right_negatives, max_fpr, d.reason)
            assert not d.beats_baselines
    assert "no better than always yes" in decide(np.array([True] * 1700 + [False] * 300), np.full(2000, 0.9)).reason


def test_a_false_positive_rate_of_half_is_not_deployed_by_default():
    y = np.array([True] * 1000 + [False] * 200)
    p = np.where(y, 0.9, 0.1)
    p[1000:1100] = 0.9  # half the negatives flagged: accuracy 1100/1200, FPR 0.5
    d = decide(y, p)
    assert d.action == "inconclusive" and d.fpr_check["passed"] is False
    assert "false positive rate 0.500 is above decision.max_fpr=0.2" in d.reason
    assert decide(y, p, rule=DecisionRule(max_fpr=None)).action == "deploy"  # the plan's own rule


def test_clips_needed_is_the_brute_force_answer_and_monotone():
    from scipy.stats import binomtest

    def brute(observed, line):
        for n in range(1, 5000):
            ci = binomtest(round(observed * n), n).proportion_ci()
            if (ci.low > line) if observed > line else (ci.high < line):
                return n

    for observed, line in ((0.9, 0.8), (0.95, 0.8), (0.7, 0.8), (0.5, 0.6), (0.95, 0.85)):
        assert clips_needed(observed, line) == brute(observed, line), (observed, line)
    above = [clips_needed(a, 0.8) for a in (0.82, 0.85, 0.88, 0.9, 0.95, 0.99)]
    below = [clips_needed(a, 0.8) for a in (0.78, 0.75, 0.7, 0.6, 0.4)]
    assert above == sorted(above, reverse=True) and below == sorted(below, reverse=True)
    assert clips_needed(0.8, 0.8) is None


def test_targets_timing_and_coverage():
    y, p = answers(8, missing=1)  # 8 right of 9 answered, 1 unanswered -> 8/10
    d = decide(y, p, timing=timing_stats([100.0] * 19 + [119.9]))
    assert d.accuracy == pytest.approx(0.8) and d.action == "inconclusive"
    assert "1 clips had no usable answer" in d.reason and d.meets_time_target
    assert not decide(y, p, timing=timing_stats([120.0] * 5)).meets_time_target  # 120 s is not < 120
    assert decide(y, p).meets_time_target is None
    on_target = decide(*answers(170, n=200, n_pos=100, spread_errors=True))
    assert on_target.accuracy_target["status"] == "uncertain" and on_target.accuracy_target["clips_needed"] is None
    assert decide(*answers(990, n=1000, n_pos=500, spread_errors=True)).accuracy_target["status"] == "met"
    assert decide(*answers(50, n=100, n_pos=50)).accuracy_target["status"] == "not met"


def test_rule_boundaries_with_float_noise():
    assert rule_action(0.8) == rule_action(0.7 + 0.1) == rule_action(0.8 + 1e-12) == "optimise"
    assert rule_action(0.6) == rule_action(0.6 - 1e-12) == "optimise"
    assert rule_action(0.8001) == "deploy" and rule_action(0.5999) == "fine-tune"
    with pytest.raises(ValueError, match="NaN"):
        rule_action(NAN)


def test_decision_for_a_fine_tuned_checkpoint_speaks_of_the_fine_tune():
    y, p = answers(92, n=100, n_pos=50, spread_errors=True)
    d = decide(y, p, model_stage="fine-tuned")
    assert d.action == "deploy" and d.model_stage == "fine-tuned"
    assert "-> deploy: deploy this fine-tuned checkpoint" in d.reason and "zero-shot" not in d.reason
    d = decide(*answers(70, n=300, n_pos=150), model_stage="fine-tuned")
    assert d.action == "fine-tune" and "this fine-tune did not learn the task" in d.reason
    with pytest.raises(ValueError, match="model_stage"):
        decide(y, p, model_stage="finetuned")


def test_no_decision_below_the_answered_floor_says_how_many_clips_failed_and_why():
    y, p = answers(3, missing=7)  # 3 of 10 answered
    d = decide(y, p, rule=DecisionRule(min_answered_fraction=0.9), failure_causes={"timed out": 2, "HTTP 503": 5})
    assert d.action is None and d.accuracy_target is None and d.beats_baselines is None
    assert d.reason.startswith(
        "no decision: 7 of 10 clips failed (5 x HTTP 503; 2 x timed out); the rule needs at "
        "least 90% of the clips answered (decision.min_answered_fraction=0.9)"
    )
    strict_json(d.to_dict())
    y, p = answers(90, n=100, n_pos=50, missing=10)  # exactly 90% answered: the rule applies
    assert decide(y, p, rule=DecisionRule(min_answered_fraction=0.9)).action is not None


def test_decision_rule_from_config_refuses_unknown_keys():
    assert DecisionRule.from_config({"max_fpr": None}).max_fpr is None
    with pytest.raises(ValueError, match="max_fpt"):
        DecisionRule.from_config({"max_fpt": 0.1})
