"""Turn an evaluation summary into a Markdown table and an accuracy-vs-steps PNG."""

from __future__ import annotations

from pathlib import Path


def markdown_table(summary: dict) -> str:
    """One row per decoding setting, one column per metric (percent)."""
    metrics = summary["metrics"]
    head = ["decode", "tokens/step", "steps"] + [f"{m} %" for m in metrics] + ["n", "NFE/example", "sec"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary["results"]:
        cells = [row["decode"], f"{row['tokens_per_step']:g}", str(row["steps"])]
        cells += [f"{100 * row[m]:.1f}" for m in metrics]
        cells += [str(row["n"]), f"{row['nfe_per_example']:.1f}", f"{row['seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    d = summary["decoding"]
    lines.append("")
    lines.append(f"model `{summary['model']['name']}`, task `{summary['task']}` ({summary['data']}), "
                 f"protocol `{summary['protocol']}`, temperature {d['temperature']}, remasking {d['remasking']}, "
                 f"block {d['block_length']}, seed {summary['seed']}, {summary['hardware']['processor']} "
                 f"({summary['hardware']['torch_threads']} threads)")
    if "search" in d:
        lines.append("search: " + ", ".join(f"{k}={v}" for k, v in d["search"].items()))
    return "\n".join(lines) + "\n"


def accuracy_plot(summary: dict, path: Path) -> Path:
    """Each metric against tokens per step, one line per decode method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    decodes = sorted({r["decode"] for r in summary["results"]})
    for dec in decodes:
        rows = sorted((r for r in summary["results"] if r["decode"] == dec), key=lambda r: r["tokens_per_step"])
        for m in summary["metrics"]:
            ax.plot([r["tokens_per_step"] for r in rows], [100 * r[m] for r in rows], marker="o", label=f"{dec}: {m}")
    ax.set_xlabel("tokens per step (response masks / steps)")
    ax.set_ylabel("%")
    ax.set_title(f"{summary['model']['name']} on {summary['task']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
