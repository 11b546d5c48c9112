"""Reproduce the golden outputs of the field's anticipation protocols, case by case.

    python scripts/check_protocols.py fixture=../shared/protocols/ustring [tolerance=1e-9] [summary=FILE.json]

A fixture is a folder holding `cases.json` (or a folder of such folders, every one of them is run), in the layout of
../shared/protocols/README.md: a list of `{name, protocol, inputs, expected}`. Each case runs the protocol named by
`protocol` (ghostprobe.metrics.anticipation) on `inputs` as keyword arguments and compares every figure of
`expected` with the project's. Prints one row per figure; exits 1 naming every case and figure that differs by more
than `tolerance` (or whose protocol failed or is unknown).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig, OmegaConf

from ghostprobe.cli import entry_point
from ghostprobe.metrics import anticipation

PROTOCOLS = {
    name: getattr(anticipation, name)
    for name in ("ustring_ap_mtta", "corrected_ap_mtta", "far_gated_anticipation", "nexar_map")
}


def case_files(fixture: Path) -> list[Path]:
    """`fixture/cases.json`, else every `fixture/*/cases.json`; FileNotFoundError when there is none."""
    if (fixture / "cases.json").is_file():
        return [fixture / "cases.json"]
    found = sorted(fixture.glob("*/cases.json"))
    if not found:
        raise FileNotFoundError(f"{fixture}: no cases.json in it or in its sub-folders")
    return found


def _figure(result: dict, name: str):
    """A figure of a protocol's result; `a.b` reads result["a"]["b"]."""
    value = result
    for part in name.split("."):
        value = value[part]
    return value


def check_cases(path: Path, tolerance: float) -> list[dict]:
    """One row per expected figure of every case in `path`: case, figure, expected, project, difference, ok."""
    rows = []
    for case in json.loads(path.read_text(encoding="utf-8")):
        name, protocol = case.get("name", "?"), case.get("protocol")
        if protocol not in PROTOCOLS:
            rows.append(
                {
                    "case": name,
                    "figure": "*",
                    "ok": False,
                    "detail": f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})",
                }
            )
            continue
        try:
            result = PROTOCOLS[protocol](**case["inputs"])
        except Exception as err:  # noqa: BLE001  (a case that fails is reported by name, the others still run)
            rows.append({"case": name, "figure": "*", "ok": False, "detail": f"{type(err).__name__}: {err}"})
            continue
        for figure, expected in case["expected"].items():
            try:
                got = float(_figure(result, figure))
            except (KeyError, TypeError) as err:
                rows.append({"case": name, "figure": figure, "ok": False, "detail": f"not in the result ({err})"})
                continue
            difference = abs(got - expected)
            ok = difference <= tolerance or (math.isnan(got) and math.isnan(expected))
            rows.append(
                {
                    "case": name,
                    "figure": figure,
                    "expected": expected,
                    "project": got,
                    "difference": difference,
                    "ok": bool(ok),
                    "detail": f"expected {expected!r}, project {got!r}, difference {difference:.3g}",
                }
            )
    return rows


@entry_point("check_protocols")
def main(cfg: DictConfig) -> None:
    fixture = Path(cfg.fixture).expanduser().resolve()
    try:
        files = case_files(fixture)
    except FileNotFoundError as err:
        raise SystemExit(f"check_protocols: {err}") from None
    rows = []
    for path in files:
        rows += [{"file": str(path), **row} for row in check_cases(path, float(cfg.tolerance))]
    for row in rows:
        print(f"{'ok  ' if row['ok'] else 'FAIL'}  {row['case']}  {row['figure']}  {row['detail']}")
    failed = [row for row in rows if not row["ok"]]
    summary = {
        "fixture": str(fixture),
        "ok": not failed,
        "figures": len(rows),
        "failed": len(failed),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "rows": rows,
    }
    if cfg.summary:
        Path(cfg.summary).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if failed:
        names = ", ".join(f"{row['case']} {row['figure']}" for row in failed)
        print(f"check_protocols: {len(failed)} of {len(rows)} figures FAILED: {names}", file=sys.stderr)
        sys.exit(1)
    print(
        f"check_protocols: all {len(rows)} figures of {len({r['case'] for r in rows})} cases within {cfg.tolerance:g}"
    )


if __name__ == "__main__":
    main()
