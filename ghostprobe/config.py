"""Composing the Hydra configs of `conf/` from Python (tests, benchmarks, notebooks), exactly as the stages do."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """The config `conf/<config_name>.yaml` with command-line style `key=value` overrides applied."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))


def prep_settings(**overrides) -> dict:
    """The resolved `prep` section of conf/data_prep.yaml; `sampling=NAME` / `split=NAME` pick a conf/sampling/ or
    conf/split/ file."""
    from omegaconf import OmegaConf

    groups = ("sampling", "split")
    args = [f"prep.{key}={value}" for key, value in overrides.items() if key not in groups]
    args += [f"{group}={overrides[group]}" for group in groups if group in overrides]
    cfg = compose("data_prep", ["out_dir=unused", *args])
    return OmegaConf.to_container(cfg.prep, resolve=True)
