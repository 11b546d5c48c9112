"""The entry points' shared start (ghostprobe/cli.py): unknown options named with the nearest known one, every
command line the docs show composes as written, and Hydra writes nothing where a command runs."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ghostprobe.cli import unknown_option
from ghostprobe.config import CONF_DIR, compose
from helpers import REPO_ROOT

TOP_LEVEL = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def entry_points() -> dict[str, str]:
    """script path -> the config its `@entry_point(...)` names."""
    found = {}
    for script in [*REPO_ROOT.glob("*/*.py")]:
        match = re.search(r'^@entry_point\("([^"]+)"\)', script.read_text(encoding="utf-8"), re.M)
        if match:
            found[str(script.relative_to(REPO_ROOT))] = match.group(1)
    return found


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(doc file, script, options) of every command line in the docs that runs an entry point: lines of ```bash
    blocks (continuations joined, comments cut) and `python ...` in backticks; `deepspeed`/`torchrun` launch lines
    count as their script."""
    scripts = entry_points()
    commands = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        lines = [
            line
            for block in re.findall(r"```bash\n(.*?)```", text, re.S)
            for line in block.replace("\\\n", " ").splitlines()
        ]
        lines += re.findall(r"`((?:python|deepspeed|torchrun) [^`]+)`", text)
        commented_out = [line.split(" #")[0] for line in lines if not line.lstrip().startswith("#")]
        for line in [part for command in commented_out for part in re.split(r";|&&", command)]:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            words = shlex.split(line)
            script = next((w for w in words if w in scripts), None)
            if script is None:
                continue
            # "[protocol=ustring|far|nexar|all]" marks an optional option: kept, with its first choice
            options = [
                re.sub(r"\|.*$", "", w.strip("[]")) if w.startswith("[") else w
                for w in words[words.index(script) + 1 :]
            ]
            options = [w for w in options if w and w != "..."]
            commands.append((doc.name, script, options))
    return commands


def test_the_docs_show_commands_of_every_kind():
    scripts = {script for _, script, _ in documented_commands()}
    assert {
        "data_prep/main.py",
        "eval/run.py",
        "scan/main.py",
        "eval/compare.py",
        "train/main.py",
        "data_prep/import_labels.py",
        "data_prep/review.py",
    } <= scripts


@pytest.mark.parametrize(
    "doc, script, options", documented_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v)[:60]
)
def test_every_documented_command_line_composes_as_written(doc, script, options):
    """The form a user copies works: `sampling=fps`, `split=zero_shot`, `+exp=lora_fewshot`, `runs=[A,B]`..."""
    config = entry_points()[script]
    flags = [o for o in options if o.startswith("-")]
    if "--config-name" in flags:
        config = options[options.index("--config-name") + 1]
    overrides = [o for o in options if not o.startswith("-") and o != config]
    if script == "data_prep/review.py":  # its first word is a command, given to Hydra as +command=...
        overrides = [f"+command={overrides[0]}", *overrides[1:]]
    # a placeholder for a group's option ("dataset=NAME") stands for any of them: the default is composed
    overrides = [
        o
        for o in overrides
        if not (
            (CONF_DIR / o.split("=")[0].lstrip("+")).is_dir() and (o.split("=", 1)[1].isupper() or o.endswith("=..."))
        )
    ]
    assert unknown_option(config, overrides) is None
    compose(config, overrides)  # Hydra's own checks: keys, group options, value types


@pytest.mark.parametrize("config_name", TOP_LEVEL)
def test_a_misspelt_option_names_the_option_it_was_meant_to_be(config_name):
    cfg = yaml.safe_load((CONF_DIR / f"{config_name}.yaml").read_text())
    key = next(k for k, v in cfg.items() if k not in ("defaults", "hydra") and len(k) > 4)
    if isinstance(cfg[key], dict):
        key = f"{key}.{next(iter(cfg[key]))}"
    typo = key[:-1] + key[-1] * 2
    assert unknown_option(config_name, [f"{typo}=1"]) == f"unknown option {typo}; did you mean {key}?"
    assert unknown_option(config_name, [f"+{typo}=1"]).startswith(f"unknown option +{typo}; did you mean {key}?")
    assert unknown_option(config_name, ["+a_new_key_nobody_has=1"]) is None  # added on purpose: let through


@pytest.mark.parametrize(
    "script, options, message",
    [
        (
            "data_prep/main.py",
            ["labels=x", "out_dir=y", "prep.num_procs=2"],
            "data_prep: unknown option prep.num_procs; did you mean prep.num_proc?",
        ),
        (
            "scan/main.py",
            ["input=x", "output_dir=y", "+threshhold=0.5"],
            "scan: unknown option +threshhold; did you mean threshold? (a new key is read by nobody)",
        ),
        (
            "train/main.py",
            ["+exp=tiny_smoke", "train.lrr=1e-4"],
            "train: unknown option train.lrr; did you mean train.lr?",
        ),
    ],
)
def test_an_unknown_option_is_one_line_and_exit_code_2(tmp_path, script, options, message):
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *options], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == message, done.stderr[-2000:]
    assert list(Path(tmp_path).iterdir()) == []


def test_hydra_writes_nothing_where_a_command_runs(tmp_path, make_video):
    from helpers import write_label_file

    make_video("videos/a.mp4", num_frames=30, width=32, height=32)
    labels = write_label_file(tmp_path / "labels.json", [{"clip_id": "a", "video": "videos/a.mp4", "label": "normal"}])
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "data_prep/main.py"),
            f"labels={labels}",
            f"out_dir={tmp_path / 'out'}",
            "split=zero_shot",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(cwd.iterdir()) == [] and not (tmp_path / "out" / ".hydra").exists()
    import json

    report = json.loads((tmp_path / "out" / "prep_report.json").read_text())
    assert report["config"]["labels"] == str(labels) and report["config"]["prep"]["split"]["name"] == "zero_shot"
