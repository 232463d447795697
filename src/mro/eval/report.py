"""Turn an evaluation summary into a Markdown table and an accuracy-vs-steps PNG."""

from __future__ import annotations

from pathlib import Path


def markdown_table(summary: dict) -> str:
    """One row per decoding setting, one column per metric (percent), then its cost: DLM forwards
    per example and tokens committed per forward (docs/method.md section 8). A threshold row's
    step count and tokens per step are not used by the decoder: they print as ``-``."""
    metrics = summary["metrics"]
    thresholds = any(r.get("threshold") is not None for r in summary["results"])
    head = ["decode", "tokens/step", "steps"] + (["threshold"] if thresholds else []) + [f"{m} %" for m in metrics]
    head += ["n", "forwards/example", "tokens/forward", "sec"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary["results"]:
        fixed = row.get("threshold") is None
        cells = [row["decode"], f"{row['tokens_per_step']:g}" if fixed else "-", str(row["steps"]) if fixed else "-"]
        cells += [] if not thresholds else ["-" if fixed else f"{row['threshold']:g}"]
        cells += [f"{100 * row[m]:.1f}" for m in metrics]
        tpf = row.get("tokens_per_forward")
        cells += [str(row["n"]), f"{row['nfe_per_example']:.1f}", "-" if tpf is None else f"{tpf:.2f}",
                  f"{row['seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    d = summary["decoding"]
    lines.append("")
    lines.append(f"model `{summary['model']['name']}`, task `{summary['task']}` ({summary['data']}), "
                 f"protocol `{summary['protocol']}`, temperature {d['temperature']}, remasking {d['remasking']}, "
                 f"block {d['block_length']}, cache {d.get('cache', 'none')}, seed {summary['seed']}, "
                 f"{summary['hardware']['processor']} "
                 f"({summary['hardware']['torch_threads']} threads)")
    if "search" in d:
        lines.append("search: " + ", ".join(f"{k}={v}" for k, v in d["search"].items()))
    return "\n".join(lines) + "\n"


def accuracy_plot(summary: dict, path: Path) -> Path:
    """Each metric against tokens per step (fixed schedules) and against DLM forwards per example
    (every setting, thresholds included), one line per decode method and schedule kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_f) = plt.subplots(1, 2, figsize=(10, 4))
    for dec in sorted({r["decode"] for r in summary["results"]}):
        mine = [r for r in summary["results"] if r["decode"] == dec]
        fixed = sorted((r for r in mine if r.get("threshold") is None), key=lambda r: r["tokens_per_step"])
        for m in summary["metrics"]:
            if fixed:
                ax.plot([r["tokens_per_step"] for r in fixed], [100 * r[m] for r in fixed], marker="o",
                        label=f"{dec}: {m}")
            for kind, rows in (("steps", fixed), ("threshold", [r for r in mine if r.get("threshold") is not None])):
                rows = sorted(rows, key=lambda r: r["nfe_per_example"])
                if rows:
                    ax_f.plot([r["nfe_per_example"] for r in rows], [100 * r[m] for r in rows],
                              marker="o" if kind == "steps" else "s", label=f"{dec} ({kind}): {m}")
    ax.set_xlabel("tokens per step (response masks / steps)")
    log_forwards_axis(ax_f)
    ax_f.set_xlabel("DLM forwards per example (log scale)")
    for a in (ax, ax_f):
        a.set_ylabel("%")
        a.grid(alpha=0.3)
        if a.lines:
            a.legend(fontsize=8)
    fig.suptitle(f"{summary['model']['name']} on {summary['task']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def print_table(console, table) -> None:
    """Print a rich table; into a file or pipe (not a terminal) at its full width, so a log never
    cuts its headers to the console's default 80 columns."""
    if console.is_terminal:
        console.print(table)
        return
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update_width(100_000), table).maximum
    width = console.width
    console.width = max(width, need)
    try:
        console.print(table)
    finally:
        console.width = width


def log_forwards_axis(ax) -> None:
    """A log x axis of forward counts labelled 1, 2, 5, 10, 20, ... (no crowded minor labels)."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
