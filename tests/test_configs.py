"""Every YAML under conf/ composes (and resolves) through Hydra the way the stages load it."""

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from ghostprobe.config import CONF_DIR, compose

TOP_LEVEL = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


def _group_overrides() -> dict[str, tuple[str, str]]:
    """group folder -> (top-level config using it, override key), read from each top-level defaults list."""
    found: dict[str, tuple[str, str]] = {}
    for name in TOP_LEVEL:
        defaults = yaml.safe_load((CONF_DIR / f"{name}.yaml").read_text()).get("defaults", [])
        for entry in defaults:
            if isinstance(entry, dict):
                for key in entry:
                    group = key.replace("optional ", "").replace("override ", "").split("@")[0].strip()
                    found.setdefault(group, (name, key.replace("optional ", "").strip()))
    return found


def _composed(config_name: str, overrides: list[str]):
    """Compose, fill every mandatory value (???) with a placeholder path, and resolve every interpolation."""
    cfg = compose(config_name, overrides)
    missing = sorted(_missing(OmegaConf.to_container(cfg, resolve=False)))
    if missing:
        cfg = compose(config_name, [*overrides, *(f"{key}=/tmp/placeholder" for key in missing)])
    return OmegaConf.to_container(cfg, resolve=True)


def _missing(node, prefix: str = ""):
    """Dotted keys whose value is the mandatory marker ??? (unresolved container, so interpolations don't fail)."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _missing(value, f"{prefix}{key}.")
        elif value == "???":
            yield f"{prefix}{key}"


def _leaves(node, prefix: tuple = ()):
    """(path, value) of every scalar or list in a raw YAML mapping."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _at(node, path):
    for key in path:
        node = node[key]
    return node


def _header_package(relative: str) -> str | None:
    """The `# @package X` header of a group file (None when it has none)."""
    for line in (CONF_DIR / relative).read_text().splitlines():
        if line.startswith("# @package "):
            return line.split(maxsplit=2)[2].strip()
    return None


def _literal(value) -> bool:
    """A value Hydra takes as written: not mandatory (???) and no interpolation."""
    return value != "???" and "${" not in str(value)


@pytest.mark.parametrize("config_name", TOP_LEVEL)
def test_top_level_config_composes(config_name):
    raw = yaml.safe_load((CONF_DIR / f"{config_name}.yaml").read_text())
    resolved = _composed(config_name, [])
    # every group it lists landed where its package says, and its own values are the ones it states
    for entry in raw.get("defaults", []):
        if isinstance(entry, dict):
            key, option = next(iter(entry.items()))
            if key.startswith("override ") or option is None:
                continue
            group, _, package = key.replace("optional ", "").partition("@")
            interpolated = "${" in str(option)  # e.g. `importer: ${dataset}`: the option is chosen by another group
            package = package or (None if interpolated else _header_package(f"{group}/{option}.yaml")) or group
            node = resolved if package == "_global_" else _at(resolved, package.split("."))
            assert isinstance(node, dict) and node, f"conf/{config_name}.yaml: group {group} composed to {node!r}"
    own = {k: v for k, v in raw.items() if k not in ("defaults", "hydra")}
    for path, value in _leaves(own):
        if _literal(value) and not isinstance(_at(resolved, path[:-1]), str):
            assert _at(resolved, path) == value, f"conf/{config_name}.yaml: {'.'.join(map(str, path))}"


GROUP_FILES = sorted(str(p.relative_to(CONF_DIR)) for p in CONF_DIR.glob("*/*.yaml"))


@pytest.mark.parametrize("relative", GROUP_FILES)
def test_every_group_option_composes(relative):
    group, option = Path(relative).parent.name, Path(relative).stem
    usages = _group_overrides()
    if group == "exp":  # experiments are added on the command line: +exp=NAME
        config_name, key = "train", "+exp"
    else:
        assert group in usages, f"conf/{relative}: no top-level config lists group {group!r} in its defaults"
        config_name, key = usages[group]
    resolved = _composed(config_name, [f"{key}={option}"])
    text = (CONF_DIR / relative).read_text()
    # the option's own values reach the composed config, where its package puts them (a misplaced
    # `# @package` header, a typo in a nested key or a base file overriding its child would break this)
    header = _header_package(relative)
    if "@" in key:
        where = tuple(key.lstrip("+").partition("@")[2].split("."))
    elif header == "_global_":
        where = ()
    else:
        where = tuple((header or group).split("."))
    raw = yaml.safe_load(text) or {}
    own = {k: v for k, v in raw.items() if k not in ("defaults", "hydra")}
    assert own or raw.get("defaults"), f"conf/{relative} sets nothing"
    for path, value in _leaves(own):
        if _literal(value):
            assert _at(resolved, (*where, *path)) == value, f"conf/{relative}: {'.'.join(map(str, path))}"
