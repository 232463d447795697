"""The learning curves of a run (``curves.png``), drawn from its log (docs/architecture.md)."""

from __future__ import annotations

import os
from pathlib import Path

from mro.train.run_folder import read_log


def _val_series(vals: list[dict]) -> dict[str, list[float]]:
    """Label -> values of each validation line: solved % per step count, or the held-out loss."""
    if vals and "solved" in vals[0]:
        steps = sorted({int(s) for r in vals for s in r["solved"]})
        return {f"val solved % @ {s} steps": [100 * r["solved"][str(s)] for r in vals] for s in steps}
    return {"held-out loss": [r["loss"] for r in vals if "loss" in r]}


def plot_curves(log_path: Path, png: Path, title: str) -> None:
    """Validation (solved % or held-out loss) and the training reward (or loss) against updates and
    against wall-clock minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    vals = [r for r in records if r.get("kind") == "val"]
    trains = [r for r in records if r.get("kind") == "train"]
    if not vals and not trains:
        return
    train_key = "reward" if trains and "reward" in trains[0] else "loss"
    series = _val_series(vals)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x_key, label in ((axes[0], "update", "update"), (axes[1], "wall_min", "wall-clock minutes")):
        for name, ys in series.items():
            if ys:
                ax.plot([r[x_key] for r in vals][:len(ys)], ys, marker="o", ms=3, label=name)
        ax.set_xlabel(label)
        ax.set_ylabel("validation")
        ax.grid(alpha=0.3)
        if trains and train_key in trains[0]:
            tw = ax.twinx()
            tw.plot([r[x_key] for r in trains], [r[train_key] for r in trains], color="grey", alpha=0.4, lw=0.8,
                    label=f"training {train_key}")
            tw.set_ylabel(f"training {train_key}")
        if series and any(series.values()):
            ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = png.with_name(png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png)
