"""``mro show``: one decoding, step by step, in the terminal and as a PNG and an HTML page.

Shows which tokens were committed at which step; for test-time scaling, the candidates' scores
of every segment and which one was kept.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.text import Text

from mro.errors import MroError
from mro.eval.setup import EvalConfig, batch_generator, prepare_eval
from mro.io import output_folder


@dataclass
class ShowConfig(EvalConfig):
    """Decode one example and render its trajectory."""

    index: int = field(default=0, metadata={"help": "which example of the data to show (0 = the first)",
                                            "min": 0, "max": 99_999})
    out: str = field(default="runs/show", metadata={"help": "output folder of the PNG and HTML pages"})

    def __post_init__(self):
        super().__post_init__()
        if any(v and len(v) > 1 for v in (self.steps, self.tokens_per_step, self.threshold)):
            raise MroError("mro show decodes with one setting; give a single --steps, --tokens-per-step or "
                           "--threshold")


def _token_text(tok, t: int, mask_id: int) -> str:
    if t == mask_id:
        return "_"
    s = tok.decode([t], skip_special_tokens=False)
    return s if s.strip() else "\u2423"


def decode_one(cfg: ShowConfig):
    """Decode example ``cfg.index`` exactly as ``mro eval`` with the same settings decodes it; return
    (model, task, example, trajectory, details, decode config).

    ``mro eval`` decodes batches of ``batch_size`` examples, each with its own noise (from
    ``seed``, the step count and the batch number) and the step count derived from all ``n``
    examples; so this loads the same ``n`` examples, decodes the whole batch that holds the
    example with the same generator, and keeps its row.
    """
    setup = prepare_eval(cfg)
    if cfg.index >= len(setup.examples):
        raise MroError(f"index {cfg.index} is out of range: the evaluation has {len(setup.examples)} examples "
                       "(raise --n or give a larger data file)")
    setting = setup.grid[0]
    j = cfg.index // cfg.batch_size
    idx = setup.batch(j)
    row = cfg.index - idx[0]
    res = setup.run(setting, idx, batch_generator(cfg.seed, setting.steps, j, setup.model.device))
    details = res.details[row] if res.details else {}
    return setup.model, setup.task, setup.examples[cfg.index], res.trajectory.index([row]), details, setting.decode


def render_terminal(model, traj, details: dict, console: Console) -> None:
    tok, m = model.tokenizer, model.mask_token_id
    resp = traj.response[0].tolist()
    cs = traj.commit_step[0].tolist()
    for t in range(traj.steps_done + 1):
        line = Text(f"step {t:>3} ")
        for pos, tid in enumerate(resp):
            shown = cs[pos] < t
            ch = _token_text(tok, tid, m) if shown else "_"
            style = "bold green" if cs[pos] == t - 1 else ("dim" if cs[pos] == -1 else "")
            line.append(ch, style=style)
        console.print(line)
    for seg in details.get("search", []):
        scores = ", ".join(f"[bold]{s:.3f}[/]" if i == seg["chosen"] else f"{s:.3f}" for i, s in enumerate(seg["scores"]))
        console.print(f"segment {seg['segment'][0]}-{seg['segment'][1]}: candidates {scores}")


def render_png(model, traj, details: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tok, m = model.tokenizer, model.mask_token_id
    resp = traj.response[0].tolist()
    cs = traj.commit_step[0].tolist()
    g = len(resp)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * g), max(2, 0.4 * (traj.steps_done + 1)) + 0.8))
    grid = torch.full((traj.steps_done, g), float("nan"))
    for pos, c in enumerate(cs):
        if c >= 0:
            grid[c:, pos] = c
    ax.imshow(grid.numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=max(1, traj.steps_done - 1), alpha=0.45)
    for pos, c in enumerate(cs):
        for t in range(traj.steps_done):
            if c == -1 or c <= t:
                ax.text(pos, t, _token_text(tok, resp[pos], m), ha="center", va="center",
                        color="white" if c == t else ("gray" if c == -1 else "black"),
                        fontweight="bold" if c == t else "normal", fontsize=8)
    ax.set_xlabel("response position")
    ax.set_ylabel("step (state after it)")
    title = f"{model.name}: {traj.steps_done} steps"
    if details.get("search"):
        title += "; kept candidate per segment: " + ",".join(str(s["chosen"]) for s in details["search"])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_html(model, traj, details: dict, path: Path) -> Path:
    tok, m = model.tokenizer, model.mask_token_id
    resp = traj.response[0].tolist()
    cs = traj.commit_step[0].tolist()
    rows = []
    for t in range(traj.steps_done + 1):
        cells = []
        for pos, tid in enumerate(resp):
            text = html.escape(_token_text(tok, tid, m)) if cs[pos] < t else "_"
            cls = "new" if cs[pos] == t - 1 else ("given" if cs[pos] == -1 else "")
            cells.append(f'<td class="{cls}">{text}</td>')
        rows.append(f"<tr><th>step {t}</th>{''.join(cells)}</tr>")
    segs = "".join(
        "<li>steps {}-{}: {}</li>".format(s["segment"][0], s["segment"][1], ", ".join(
            f"<b>{v:.3f}</b>" if i == s["chosen"] else f"{v:.3f}" for i, v in enumerate(s["scores"])))
        for s in details.get("search", []))
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(model.name)} trajectory</title>"
            "<style>td{font-family:monospace;padding:2px 5px;text-align:center}.new{background:#9e9;font-weight:bold}"
            ".given{color:#888}</style>"
            f"<h3>{html.escape(model.name)}: {traj.steps_done} steps</h3><table>{''.join(rows)}</table>"
            + (f"<h4>candidates per segment (kept in bold)</h4><ul>{segs}</ul>" if segs else ""))
    path.write_text(page)
    return path


def run_show(cfg: ShowConfig, console: Console | None = None) -> dict:
    console = console or Console()
    model, task, example, traj, details, dcfg = decode_one(cfg)
    console.print(f"[bold]{task.name}[/] example {example.id}, {cfg.decode}, {dcfg.steps} steps, "
                  f"temperature {dcfg.temperature}" + ("" if dcfg.cache == "none" else f", cache {dcfg.cache}"))
    render_terminal(model, traj, details, console)
    text = model.tokenizer.decode(traj.response[0].tolist())
    console.print(f"response: {text!r}  metrics: {task.score(example, text)}")
    out = output_folder(cfg.out)
    png = render_png(model, traj, details, out / f"trajectory_{cfg.index}.png")
    page = render_html(model, traj, details, out / f"trajectory_{cfg.index}.html")
    console.print(f"png:  {png}\nhtml: {page}")
    return {"png": str(png), "html": str(page)}
