"""The one way every entry point (`data_prep/*.py`, `eval/*.py`, `train/main.py`, `scripts/*.py`) starts.

`@entry_point("eval")` stands where `@hydra.main(...)` would, and adds what each entry point would otherwise get wrong
on its own:
- **Unknown options are one line, exit code 2**, before Hydra composes anything: `eval: unknown option
  metrics.treshold_criterion; did you mean metrics.threshold_criterion?`. Hydra alone says "Key 'num_procs' is not
  in struct", or, for a top-level key, suggests `+key=value`, which then runs silently at the default. A `+key` that
  is a near miss of an existing key is refused the same way; a deliberately new `+key` is let through.
- **One Hydra rule for every entry point** (`HYDRA_RULE`): Hydra writes nothing (no outputs/DATE/TIME folders, no
  .hydra copy, no <job>.log) and never changes the working directory, so a command runs the same in a read-only
  folder and leaves no stray folders; Python logging goes to the console. Each stage records its resolved config in
  its own results instead (metrics.json, prep_report.json, scan.json, comparison.json, the training run's
  config.yaml). It is given on the command line ahead of the user's options (which may still change it): Hydra's
  own settings merge after every config file, so a YAML default could not hold it without a copy in each of them.
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable

from omegaconf import DictConfig, ListConfig

from ghostprobe.config import CONF_DIR

USAGE_ERROR = 2  # the exit code of a command line that names an option no config has
HYDRA_RULE = (
    "hydra.run.dir=.",
    "hydra.output_subdir=null",
    "hydra.job.chdir=false",
    "hydra/job_logging=stdout",
    "hydra/hydra_logging=disabled",
)


def entry_point(config_name: str) -> Callable:
    """Decorator for a stage's `main(cfg)`: checks the command line's options against conf/<config_name>.yaml as
    composed, then runs `main` under Hydra with that config."""
    import hydra

    def decorate(task: Callable[[DictConfig], object]) -> Callable[[], object]:
        hydra_task = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(task)

        @functools.wraps(task)
        def run():
            problem = unknown_option(config_name, sys.argv[1:])
            if problem:
                print(f"{_program(task)}: {problem}", file=sys.stderr)
                sys.exit(USAGE_ERROR)
            sys.argv[1:1] = HYDRA_RULE
            return hydra_task()

        return run

    return decorate


def _program(task: Callable) -> str:
    """How the entry point names itself in messages: the stage for its main script (data_prep/main.py -> data_prep,
    eval/run.py -> eval, train/main.py -> train), else the script's name (scan, report, compare, export_model...)."""
    module = sys.modules.get(task.__module__)
    path = (getattr(module, "__file__", None) or task.__module__).replace("\\", "/")
    parts = path.split("/")
    stem = parts[-1].removesuffix(".py")
    return parts[-2] if stem in ("main", "run") and len(parts) > 1 else stem


def unknown_option(config_name: str, argv: list[str]) -> str | None:
    """The message for the first option of `argv` that conf/<config_name>.yaml does not have (with the nearest
    known option, by difflib), or None. Config-group choices (`model=gpt4o`, `+exp=lora_fewshot`) are applied first, so
    the keys they bring count; `hydra.*` options, deletions (`~key`) and Hydra's own flags are left to Hydra."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        args = get_args_parser().parse_args(argv)
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except (HydraException, SystemExit):  # a malformed override or flag: Hydra says what is wrong with it
        return None
    config_name = args.config_name or config_name  # --config-name NAME
    groups = [o for o in overrides if _is_group(o.key_or_group)]
    values = [o for o in overrides if o not in groups and not o.is_delete() and not o.key_or_group.startswith("hydra")]
    if not values:
        return None
    from ghostprobe.config import compose

    try:
        cfg = compose(config_name, [o.input_line for o in groups])
    except HydraException:  # an unknown group option (model=gpt5): Hydra lists the available ones
        return None
    known = dict(_paths(cfg))
    candidates = list(known) + [str(p.relative_to(CONF_DIR)) for p in CONF_DIR.iterdir() if p.is_dir()]
    for override in values:
        key = override.key_or_group
        if _has(cfg, key):
            continue
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
        if override.is_add() or override.is_force_add():
            if not close:
                continue  # a new key on purpose (e.g. a backend argument the YAML does not list)
            return f"unknown option +{key}; did you mean {close[0]}? (a new key is read by nobody)"
        hint = f"; did you mean {close[0]}?" if close else f"; the options are in conf/{config_name}.yaml"
        return f"unknown option {key}{hint}"
    return None


def _is_group(key: str) -> bool:
    group = key.split("@")[0]
    return not group.startswith("hydra") and (CONF_DIR / group).is_dir()


def _paths(node, prefix: str = ""):
    """(dotted path, value) of every key of a config, nodes and leaves, without resolving interpolations."""
    if isinstance(node, DictConfig):
        for key in node.keys():
            path = f"{prefix}{key}"
            yield path, None
            yield from _paths(node._get_node(key), f"{path}.")
    elif isinstance(node, ListConfig):
        for index in range(len(node)):
            yield from _paths(node._get_node(index), f"{prefix}{index}.")


def _has(cfg: DictConfig, key: str) -> bool:
    """Whether the dotted `key` exists in `cfg` (a mandatory ??? value or a null counts as existing)."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig) and part in node.keys():  # `in node` is False for a mandatory ??? value
            node = node._get_node(part)
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node._get_node(int(part))
        else:
            return False
    return True
