"""The retrain verdict as recorded with an adapter (`verdict.json`), and the switch guard that reads it.

Apart from train/verdict.py (which computes verdicts and needs torch) so that `status` and the CLI's guard read a
verdict without importing the training stack.
"""

from __future__ import annotations

import json
from pathlib import Path

VERDICT_FILE = "verdict.json"
BETTER, SAME, WORSE, UNJUDGED = "better", "no measurable change", "worse", "not judged"


class SwitchRefused(RuntimeError):
    """Switching an index to a model whose recorded verdict is worse, without --force."""


def save(folder: Path, verdict: dict) -> None:
    (Path(folder) / VERDICT_FILE).write_text(json.dumps(verdict, indent=2) + "\n")


def load(folder: str | Path | None) -> dict | None:
    """The verdict recorded with an adapter or model folder, if any (a hub id or a folder without one: None)."""
    if not folder:
        return None
    path = Path(folder).expanduser() / VERDICT_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def brief(verdict: dict | None) -> dict | None:
    """What the index records and `status` shows of a verdict."""
    if not verdict:
        return None
    return {k: verdict.get(k) for k in ("verdict", "metric", "diff", "ci95", "queries")}


def check_switch(folder: str | Path | None, force: bool) -> dict | None:
    """Refuse a switch to a model judged worse unless forced; returns the verdict to record with the index."""
    v = load(folder)
    if v and v.get("verdict") == WORSE and not force:
        raise SwitchRefused(
            f"{folder} was judged worse than the model it was trained from on its held-out check "
            f"({v['diff']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] {v['metric']}); keep the current model, "
            "or pass --force to switch anyway")
    return brief(v)


__all__ = ["BETTER", "SAME", "SwitchRefused", "UNJUDGED", "VERDICT_FILE", "WORSE", "brief", "check_switch", "load",
           "save"]
