"""Stage 3 entry: `python eval/run.py model=NAME data.path=DS [data.split=test] [prompt=...] output_dir=DIR`.

Writes DIR/predictions.jsonl (resumable), DIR/metrics.json, DIR/report.md and DIR/report.html. Under `torchrun`
each rank scores its share of the clips into its own predictions file and rank 0 merges and reports.
"""

import contextlib
import json
import sys
from pathlib import Path

# A stage script runs as `python eval/run.py`: put the repository root on the path so `eval.*` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig, OmegaConf

from eval.evaluate import EvalSession, evaluate_split
from eval.predictions import PredictionWriter, data_fingerprint, row_key, run_identity
from eval.summarize import metrics_document, summarize
from ghostprobe.cli import entry_point
from ghostprobe.distributed import barrier, rank_and_world_size
from ghostprobe.files import read_jsonl, write_json_atomic
from ghostprobe.models.api.retry import ApiModelError
from ghostprobe.prompts import load_prompt


class EvalSetupError(SystemExit):
    """A problem found before any clip is scored: the message says what to fix."""


class EvalStopped(SystemExit):
    """The model cannot go on (API key rejected, too many failed clips in a row): the rows so far are kept."""


class TooManyFailedClips(SystemExit):
    """The run finished, but more than `max_failed_fraction` of the test clips have no answer."""


def load_splits(cfg: DictConfig) -> tuple[dict, str]:
    """The test split (and val split when present) of the prepared dataset, plus its fingerprint."""
    path = Path(cfg.data.path)
    if not (path / "dataset_dict.json").exists():
        raise EvalSetupError(
            f"eval: data.path={path} is not a prepared dataset (no dataset_dict.json); "
            "prepare one with `python data_prep/main.py labels=... out_dir=...`"
        )
    dataset = _load_prepared(path, "data.path")
    if cfg.data.split not in dataset:
        raise EvalSetupError(
            f"eval: split {cfg.data.split!r} is not in {path} (it has: {', '.join(dataset)}); set data.split="
        )
    splits = {cfg.data.split: dataset[cfg.data.split]}
    if cfg.data.val_split and cfg.data.val_split in dataset and cfg.data.val_split != cfg.data.split:
        splits["val"] = dataset[cfg.data.val_split]
    if cfg.data.earliness_path:
        windows = _load_prepared(Path(cfg.data.earliness_path), "data.earliness_path")
        if cfg.data.split not in windows:
            raise EvalSetupError(
                f"eval: split {cfg.data.split!r} is not in data.earliness_path {cfg.data.earliness_path}"
            )
        splits["earliness"] = windows[cfg.data.split]
    if cfg.data.limit:
        splits = {name: ds.select(range(min(int(cfg.data.limit), len(ds)))) for name, ds in splits.items()}
    fingerprint = data_fingerprint(splits)
    # Frames as numpy arrays: the python-list default costs more than the model on small models.
    return {
        name: ds.with_format("numpy", columns=["frames"], output_all_columns=True) for name, ds in splits.items()
    }, fingerprint


def _load_prepared(path: Path, key: str):
    """The DatasetDict at `path`; a damaged one (a write that was killed, a truncated copy) is one line naming the
    split folder and the fix, instead of pyarrow's traceback."""
    from datasets import Dataset, load_from_disk

    try:
        return load_from_disk(str(path))
    except Exception as err:  # noqa: BLE001  (pyarrow, json and OS errors all mean the same: re-prepare)
        where, cause = path, err
        try:
            for split in json.loads((path / "dataset_dict.json").read_text())["splits"]:
                try:
                    Dataset.load_from_disk(str(path / split))
                except Exception as split_err:  # noqa: BLE001
                    where, cause = path / split, split_err
                    break
        except Exception as dict_err:  # noqa: BLE001
            where, cause = path / "dataset_dict.json", dict_err
        labels = _prep_labels(path) or "LABELS"
        first_line = (str(cause).strip().splitlines() or [""])[0][:300].rstrip(".")
        raise EvalSetupError(
            f"eval: {key}={path} is damaged and cannot be read: {where}: {type(cause).__name__}: {first_line}. "
            f"Prepare it again: python data_prep/main.py labels={labels} out_dir={path} (with the options it was "
            "made with)"
        ) from None


def _prep_labels(path: Path) -> str | None:
    """The label file a prepared dataset was made from, when its prep_report.json can still be read."""
    try:
        return json.loads((path / "prep_report.json").read_text())["labels"]
    except Exception:  # noqa: BLE001  (only a hint for the message)
        return None


def model_config(cfg: DictConfig) -> dict:
    """The backend's keyword arguments for this eval config (ghostprobe.models.base.resolve_model_config)."""
    from ghostprobe.models.base import ModelPathError, resolve_model_config

    try:
        return resolve_model_config(
            OmegaConf.to_container(cfg.model, resolve=True),
            OmegaConf.to_container(cfg.hardware, resolve=True),
            cfg.batch_size,
        )
    except ModelPathError as err:
        raise EvalSetupError(f"eval: {err}") from None


@entry_point("eval")
def main(cfg: DictConfig) -> None:
    from ghostprobe.files import exit_when_disk_full
    from ghostprobe.run_lock import RunDirBusy, RunLock

    rank, world_size = rank_and_world_size()
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    advice = "free space there (or choose another output_dir), then run the same command again: answered clips are kept"
    # One eval per folder (rank 0 holds the lock under torchrun): a second one would ask, and pay for, every clip again.
    lock = RunLock(out_dir, "eval") if rank == 0 else contextlib.nullcontext()
    try:
        with lock, exit_when_disk_full(out_dir, "eval", advice):
            evaluate(cfg, out_dir, rank, world_size)
    except RunDirBusy as busy:
        raise EvalSetupError(f"eval: {busy}") from None


def evaluate(cfg: DictConfig, out_dir: Path, rank: int, world_size: int) -> None:
    """Score every clip not yet answered under this run's identity, then (rank 0) metrics.json and the reports."""
    from ghostprobe.models.base import answer_settings, build_model
    from ghostprobe.models.video_llama.run_dir import IncompleteCheckpoint

    splits, fingerprint = load_splits(cfg)
    prompt = load_prompt(OmegaConf.to_container(cfg.prompt, resolve=True))
    model_cfg = model_config(cfg)
    questions = ("score",) + (("detect",) if cfg.generate_answers else ()) + (("when",) if cfg.ask_event_time else ())
    try:
        weights = answer_settings(model_cfg).get("weights")  # the folder and files a local path stands for now
        identity = run_identity(model_cfg, prompt, questions, fingerprint)
    except IncompleteCheckpoint as err:
        raise EvalSetupError(f"eval: {err}") from None
    pred_path = out_dir / ("predictions.jsonl" if world_size == 1 else f"predictions.rank{rank}.jsonl")
    if world_size == 1:
        fold_rank_files(out_dir)  # a torchrun run killed before its merge left rank files: their rows count
    # Rows that failed (API outage, unreadable frames) are asked again: a re-run resumes after the outage.
    done = {row["key"] for row in read_jsonl(sorted(out_dir.glob("predictions*.jsonl"))) if row["error"] is None}

    try:
        stage = model_stage(model_cfg)
        model = build_model(model_cfg)
    except IncompleteCheckpoint as err:
        raise EvalSetupError(f"eval: {err}") from None
    _check_frames_fit(model, model_cfg, splits, cfg)
    _warn_training_mismatch(model_cfg, prompt.name, getattr(model, "prompt_format", None))
    model_name = model_cfg.get("name") or getattr(model, "name", model_cfg["kind"])
    writer = PredictionWriter(pred_path)
    session = EvalSession(
        model=model,
        prompt=prompt,
        identity=identity,
        writer=writer,
        done_keys=done,
        batch_size=int(model_cfg.get("batch_size", 1)),
        prefetch_batches=int(cfg.prefetch_batches),
        generate_answers=bool(cfg.generate_answers),
        ask_event_time=bool(cfg.ask_event_time),
        model_name=model_name,
        data_fingerprint=fingerprint,
        rank=rank,
        world_size=world_size,
    )
    wall_s = {}
    try:
        for split, dataset in splits.items():
            wall_s[split] = evaluate_split(session, dataset, split)
    except ApiModelError as err:
        raise EvalStopped(
            f"eval: stopped: {err}. The clips answered so far are kept in {pred_path}; run the same "
            "command again to resume (failed clips are asked again). Nothing was decided."
        ) from None
    finally:
        writer.close()
        if hasattr(model, "close"):
            model.close()
    if world_size > 1:
        _merge_ranks(out_dir, world_size, rank)
        if rank != 0:
            return
    rows = read_jsonl([out_dir / "predictions.jsonl"])
    by_split = {split: _latest(rows, identity, split, ds["sample_id"]) for split, ds in splits.items()}
    # Throughput from this run's wall clock only when it scored the whole test split; a resumed run falls back to
    # the sum of per-clip latencies.
    resumed = any(row_key(identity, cfg.data.split, s) in done for s in splits[cfg.data.split]["sample_id"])
    test_wall_s = None if resumed or world_size > 1 else wall_s[cfg.data.split]
    summary = summarize(
        by_split[cfg.data.split],
        by_split.get("val", []),
        by_split.get("earliness", []),
        OmegaConf.to_container(cfg, resolve=True),
        test_wall_s,
        stage,
    )
    metrics = metrics_document(
        run_identity=identity,
        model=model_name,
        prompt=prompt.name,
        prompt_format=getattr(model, "prompt_format", None),
        model_stage=stage,
        model_random_init=is_random_init(model_cfg, stage),
        model_checkpoint=weights["dir"] if weights else None,
        data={
            "path": str(cfg.data.path),
            "split": cfg.data.split,
            "fingerprint": fingerprint,
            "num_samples": len(by_split[cfg.data.split]),
        },
        summary=summary,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    write_json_atomic(out_dir / "metrics.json", metrics, allow_nan=False)
    _print_summary(metrics, out_dir)
    _write_report(out_dir)
    _log_wandb(cfg, metrics, out_dir)
    _fail_on_failed_clips(metrics, float(cfg.max_failed_fraction))


def model_stage(model_cfg: dict) -> str:
    """ "fine-tuned" when model.path is a training run or checkpoint of ours (or an export of one), else
    "zero-shot": the decision's next steps differ ("deploy zero-shot" is wrong for a fine-tune)."""
    if model_cfg["kind"] != "video_llama" or not model_cfg.get("path"):
        return "zero-shot"
    from ghostprobe.models.video_llama.run_dir import (
        CHECKPOINT_INFO,
        resolve_model_dir,
    )

    model_dir = resolve_model_dir(model_cfg["path"])
    # The trainer writes CHECKPOINT_INFO into every checkpoint; scripts/export_model.py writes export_info.json.
    trained = (model_dir / CHECKPOINT_INFO).is_file() or (model_dir / "export_info.json").is_file()
    return "fine-tuned" if trained else "zero-shot"


def is_random_init(model_cfg: dict, stage: str) -> bool:
    """True for the random-init tiny stand-in built by the project and not trained: its figures say nothing about
    any detector, and the report and console say so."""
    if stage != "zero-shot" or model_cfg["kind"] != "video_llama" or not model_cfg.get("path"):
        return False
    from ghostprobe.models.video_llama.run_dir import resolve_model_dir
    from ghostprobe.models.video_llama.tiny import RANDOM_INIT_MARKER

    return (resolve_model_dir(model_cfg["path"]) / RANDOM_INIT_MARKER).is_file()


def _fail_on_failed_clips(metrics: dict, max_failed_fraction: float) -> None:
    """Exit 1 after writing the results when too many test clips have no answer: a script must not read on."""
    n, n_failed = metrics["classification"]["model"]["n"], metrics["classification"]["model"]["n_missing"]
    if n and n_failed / n > max_failed_fraction:
        raise TooManyFailedClips(
            f"eval: {n_failed} of {n} test clips have no answer, more than max_failed_fraction={max_failed_fraction:g}"
            f" (causes: `errors` in metrics.json); run the same command again to ask them again"
        )


def _check_frames_fit(model, model_cfg: dict, splits: dict, cfg: DictConfig) -> None:
    """A model that takes at most N frames per clip (Video-LLaMA's frame position embedding) would refuse every
    clip of a dataset prepared with more: say so once, before any clip is scored."""
    limit = getattr(model, "max_frames", None)
    if not limit:
        return
    for name, dataset in splits.items():
        most = max((len(t) for t in dataset["timestamps_s"]), default=0)
        if most > limit:
            raise EvalSetupError(
                f"eval: split {name!r} of {cfg.data.path} has clips of {most} frames, but model "
                f"{model_cfg.get('name') or model_cfg['kind']} takes at most {limit} (max_frames in its config.json): "
                f"prepare the data again with sampling.num_frames={limit} (python data_prep/main.py ... "
                f"sampling.num_frames={limit}), or evaluate a model that takes {most} frames"
            )


def _warn_training_mismatch(model_cfg: dict, prompt_name: str, prompt_format: str | None) -> None:
    """A fine-tune answers the prompt (and prompt layout) it was trained on; scoring it with another one measures
    something else."""
    if model_cfg["kind"] != "video_llama" or not model_cfg.get("path"):
        return
    from ghostprobe.models.video_llama.run_dir import (
        checkpoint_info,
        resolve_model_dir,
    )

    trained = checkpoint_info(resolve_model_dir(model_cfg["path"]))
    for key, used, fix in (
        ("prompt", prompt_name, f"pass prompt={trained.get('prompt')}"),
        ("prompt_format", prompt_format, "leave model.prompt_format=null"),
    ):
        if trained.get(key) and trained[key] != used:
            print(
                f"eval: WARNING: {model_cfg['path']} was fine-tuned with {key}={trained[key]} but is evaluated "
                f"with {key}={used}; {fix} to measure what was trained",
                file=sys.stderr,
            )


def _latest(rows: list[dict], identity: str, split: str, sample_ids) -> list[dict]:
    """This run's rows of one split, one per sample in dataset order (a re-asked sample keeps its newest row)."""
    by_key = {row["key"]: row for row in rows}
    missing = [s for s in sample_ids if row_key(identity, split, s) not in by_key]
    if missing:
        raise RuntimeError(f"eval: {len(missing)} samples of split {split!r} have no prediction (e.g. {missing[0]})")
    return [by_key[row_key(identity, split, s)] for s in sample_ids]


def _merge_ranks(out_dir: Path, world_size: int, rank: int) -> None:
    """Wait for every rank, then rank 0 folds their rows into predictions.jsonl."""
    barrier()
    if rank == 0:
        fold_rank_files(out_dir)
    barrier()


def fold_rank_files(out_dir: Path) -> int:
    """Append the rows of every `predictions.rank*.jsonl` to predictions.jsonl (a key already answered there is not
    appended twice; a row that answers a key that failed there is), then remove the rank files. Returns the rows
    appended. Rank files are what a torchrun run leaves; without this, a run killed before its merge would leave rows
    that count as done but are read by nobody."""
    rank_files = sorted(out_dir.glob("predictions.rank*.jsonl"))
    if not rank_files:
        return 0
    merged = out_dir / "predictions.jsonl"
    answered = {row["key"] for row in read_jsonl([merged]) if row.get("error") is None}
    new, seen = [], set()
    for row in read_jsonl(rank_files):
        identity = (row["key"], row.get("error") is None)
        if row["key"] in answered or identity in seen:
            continue
        seen.add(identity)
        new.append(row)
        if row.get("error") is None:
            answered.add(row["key"])
    writer = PredictionWriter(merged)
    writer.write(new)  # flushed and fsynced before the rank files go
    writer.close()
    for path in rank_files:
        path.unlink()
    return len(new)


def _print_summary(metrics: dict, out_dir: Path) -> None:
    model = metrics["classification"]["model"]
    timing, decision, tuned = metrics["timing"], metrics["decision"], metrics["tuned_threshold"]
    if metrics.get("model_random_init"):
        print(
            f"  NOTE: {metrics['model']} is the random-init stand-in built by the project, not a trained model: "
            "these figures say nothing about any detector"
        )
    print(
        f"{metrics['model']} on {metrics['data']['num_samples']} clips ({metrics['data']['split']}), "
        f"the model's own answer (threshold {metrics['threshold']['value']:g})"
    )
    print(
        f"  accuracy {model['accuracy_nan_as_wrong']:.3f} {_interval(decision.get('accuracy_interval'))}  "
        f"FPR {_fmt(model['fpr'])}  F1 {_fmt(model['f1'])}  AUROC {_fmt(model['auroc'])}  "
        f"p95 latency {_fmt(timing['latency_p95_s'])} s"
    )
    if tuned["available"]:
        m = tuned["metrics"]
        print(
            f"  at a tuned threshold ({tuned['note']}): accuracy {m['accuracy_nan_as_wrong']:.3f} "
            f"{_interval(m['intervals']['accuracy_nan_as_wrong'])}  FPR {_fmt(m['fpr'])}"
        )
    else:
        print(f"  no tuned threshold: {tuned['reason']}")
    action = f"decision: {decision['action'].upper()}: " if decision["action"] else ""  # else "no decision: ..."
    print(f"  {action}{decision['reason']}")
    print(f"  -> {out_dir / 'metrics.json'}")


def _interval(ci: dict | None) -> str:
    if not ci or ci.get("low") is None:
        return ""
    return f"[{ci['low']:.3f}, {ci['high']:.3f}]"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _write_report(out_dir: Path) -> None:
    from eval.report import write_report

    md, html = write_report(out_dir)
    print(f"  report: {html}")


def _log_wandb(cfg: DictConfig, metrics: dict, out_dir: Path) -> None:
    if cfg.wandb.mode == "disabled":
        return
    from eval.wandb_log import log_eval

    log_eval(cfg, metrics, out_dir)


if __name__ == "__main__":
    main()
