"""``mro analyze correlation``: the paper's token-correlation analysis (docs/method.md section 8, Fig. 1 / Table 3).

N decoding runs (seeds) of every problem at one step count. Per response:

- intra score: cumulative ``R_tv + R_ppl`` over the trajectory's steps (1 verified token per
  step by default; weights from ``--rewards``);
- inter score: ``R_q`` of the final answer against the majority-vote answer of the N runs of the
  same problem (no reference: what a user has at test time) plus the format term.

Both are z-scored over all responses. Reported: accuracy per score quintile, Spearman
correlation of each score with correctness (pooled, with a bootstrap 95% interval), and per
seed means -> mean +- std over seeds (like the paper's Table 3); a two-panel PNG.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from mro.config import changed_fields, to_dict
from mro.errors import MroError
from mro.eval.records import append_jsonl, hardware, now, read_jsonl, repair_jsonl
from mro.eval.setup import EvalConfig, prepare_eval
from mro.io import OutputLock, atomic_write_json, atomic_write_text, read_json
from mro.models.hf import resolve_device
from mro.rewards.multi import MultiReward
from mro.rewards.quality import majority_vote
from mro.rewards.verification import per_step_bounds
from mro.sampling import generate
from mro.tasks import get_task

QUANTILES = 5


@dataclass
class CorrelationConfig(EvalConfig):
    """Correlation of intra/inter-sequence scores with accuracy (paper Fig. 1, Table 3): the problems,
    prompts and decode settings of ``mro eval`` (one step count, vanilla decoding), decoded once per
    seed ``0..seeds-1``."""

    tv_tokens: str = field(default="1", metadata={"help": "tokens verified per step: a number or 'all'"})
    task_options: str | None = field(default=None, metadata={
        "help": "generator options k=v,... (default: the task's, e.g. sudoku's min_blanks=10,max_blanks=12)"})
    seeds: int = field(default=5, metadata={"help": "decoding runs per problem (seeds 0..N-1)", "min": 2, "max": 1000})
    tokens_per_step: list[float] | None = field(default_factory=lambda: [4], metadata={
        "help": "or: tokens per step", "gt": 0})
    temperature: float | None = field(default=0.5, metadata={
        "help": "sampling temperature (> 0: runs must differ)", "gt": 0})
    batch_size: int = field(default=250, metadata={"help": "problems per batch", "min": 1})
    bootstrap: int = field(default=1000, metadata={
        "help": "bootstrap resamples for the Spearman interval", "min": 10, "max": 1_000_000})
    out: str = field(default="runs/correlation", metadata={"help": "output folder"})

    def __post_init__(self):
        if self.task_options is None:
            self.task_options = get_task(self.task).default_options
        if self.steps:  # a step count replaces the default tokens per step
            self.tokens_per_step = None
        super().__post_init__()
        if self.decode != "vanilla":
            raise MroError("the correlation analysis decodes with --decode vanilla (its runs are the seeds)")
        if self.seed != 0:
            raise MroError("the correlation analysis runs seeds 0..N-1 (--seeds N); --seed is not used")
        if self.temperature is None:
            raise MroError("temperature must be > 0: at temperature 0 every run is the same")
        if any(v and len(v) > 1 for v in (self.steps, self.tokens_per_step, self.threshold)):
            raise MroError("the correlation analysis decodes at one setting; give a single --steps, "
                           "--tokens-per-step or --threshold")


#: fields that do not change the decoded rows (the bootstrap only reads them)
_NOT_ROWS = ("out", "bootstrap", "progress")


def decode_and_score(cfg: CorrelationConfig, out: Path, settings: tuple[Path, dict] | None = None
                     ) -> tuple[list[dict], dict, MultiReward]:
    """Decode every (seed, problem) and write its intra score and answer (resumable); return the
    rows, what produced them and the multi-reward that scored them.

    ``settings``: ``(path, data)`` written once everything is loaded, before the first row."""
    setup = prepare_eval(cfg, need_reward=True)
    task, model, reward, setting = setup.task, setup.model, setup.reward, setup.grid[0]
    if settings is not None:
        atomic_write_json(*settings)
    path = out / "responses.jsonl"
    done = {(r["seed"], r["index"]) for r in repair_jsonl(path)}
    batches = [(s, j) for s in range(cfg.seeds) for j in range(setup.n_batches)]
    for seed, j in tqdm(batches, desc="correlation", unit="batch", disable=not cfg.progress):
        idx = setup.batch(j)
        if all((seed, i) in done for i in idx):
            continue
        gen = torch.Generator(device=model.device).manual_seed(seed * 1_000_003 + idx[0])
        prompts, responses = setup.problems.rows(idx)
        traj = generate(model, prompts, setting.decode, responses=responses, generator=gen)
        per_step = reward.intra(traj, per_step_bounds(traj.steps_done), generator=gen)
        texts = reward.texts(traj)
        rows = []
        for b, i in enumerate(idx):
            ex = setup.examples[i]
            metrics = task.score(ex, texts[b])
            rows.append({"seed": seed, "index": i, "id": ex.id, "response": texts[b],
                         "answer": _plain(task.extract(texts[b])), "intra": float(per_step[b].sum()),
                         "correct": metrics[task.metrics[0]], "metrics": metrics})
        append_jsonl(path, rows)
    meta = {"model": model.describe(), "task": task.name, "data": setup.source, "steps": setting.steps,
            "tokens_per_step": round(setting.tokens_per_step, 3), "decoding": to_dict(setting.decode)}
    return read_jsonl(path), meta, reward


def _plain(x):
    return x if isinstance(x, (str, int, float, type(None))) else str(x)


def add_inter(rows: list[dict], reward: MultiReward) -> None:
    """Inter score of every response: ``R_q`` (unweighted, through the multi-reward's ``q`` term)
    against the majority vote of its problem's runs; no correctness term where no run had an answer."""
    by_problem: dict[int, list[dict]] = {}
    for r in rows:
        by_problem.setdefault(r["index"], []).append(r)
    for runs in by_problem.values():
        runs.sort(key=lambda r: r["seed"])
        target = majority_vote([r["answer"] for r in runs], reward.task.same_answer)
        values = reward.term("q", [r["response"] for r in runs], [target] * len(runs), None)
        for r, v in zip(runs, values.tolist()):
            r["inter"] = v


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)


def bootstrap_ci(x: np.ndarray, y: np.ndarray, n: int, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(x), len(x))
        v = _spearman(x[i], y[i])
        if not math.isnan(v):
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def quantile_accuracy(score: np.ndarray, correct: np.ndarray, q: int = QUANTILES) -> list[dict]:
    """Accuracy in each ``q``-quantile bin of a score (ties may merge bins)."""
    edges = np.quantile(score, np.linspace(0, 1, q + 1))
    bins = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, q - 1)
    out = []
    for b in range(q):
        sel = bins == b
        if sel.any():
            out.append({"bin": b + 1, "z_mean": float(score[sel].mean()), "accuracy": float(correct[sel].mean()),
                        "n": int(sel.sum())})
    return out


def analyze(rows: list[dict], seeds: int, bootstrap: int) -> dict:
    intra = _z(np.array([r["intra"] for r in rows]))
    inter = _z(np.array([r["inter"] for r in rows]))
    correct = np.array([r["correct"] for r in rows], dtype=float)
    seed_of = np.array([r["seed"] for r in rows])
    per_seed = []
    for s in range(seeds):
        m = seed_of == s
        per_seed.append({"seed": s, "accuracy": float(correct[m].mean()),
                         "intra_raw": float(np.mean([r["intra"] for r, k in zip(rows, m) if k])),
                         "inter_raw": float(np.mean([r["inter"] for r, k in zip(rows, m) if k])),
                         "spearman_intra": _spearman(intra[m], correct[m]),
                         "spearman_inter": _spearman(inter[m], correct[m])})
    summary = {}
    for key in ("accuracy", "intra_raw", "inter_raw", "spearman_intra", "spearman_inter"):
        vals = np.array([p[key] for p in per_seed], dtype=float)
        ok = vals[~np.isnan(vals)]  # a seed whose responses are all right (or all wrong) has no Spearman
        summary[key] = {"mean": float(ok.mean()) if len(ok) else float("nan"),
                        "std": float(ok.std(ddof=1)) if len(ok) > 1 else 0.0}
    return {
        "n_responses": len(rows), "per_seed": per_seed, "over_seeds": summary,
        "pooled": {name: {"spearman": _spearman(score, correct), "ci95": bootstrap_ci(score, correct, bootstrap)}
                   for name, score in (("intra", intra), ("inter", inter))},
        "quantiles": {"intra": quantile_accuracy(intra, correct), "inter": quantile_accuracy(inter, correct)},
    }


def table(result: dict, meta: dict) -> str:
    o, p = result["over_seeds"], result["pooled"]
    f = lambda d, scale=1: f"{scale * d['mean']:.2f} ± {scale * d['std']:.2f}"  # noqa: E731
    lines = ["| metric | mean ± std over seeds |", "|---|---|",
             f"| accuracy % | {f(o['accuracy'], 100)} |",
             f"| intra score (sum of R_tv + R_ppl over steps) | {f(o['intra_raw'])} |",
             f"| inter score (R_q vs majority vote) | {f(o['inter_raw'])} |",
             f"| Spearman(intra, correct) | {f(o['spearman_intra'])} |",
             f"| Spearman(inter, correct) | {f(o['spearman_inter'])} |", "",
             "| pooled | Spearman | bootstrap 95% CI |", "|---|---|---|"]
    for name in ("intra", "inter"):
        lo, hi = p[name]["ci95"]
        lines.append(f"| {name} | {p[name]['spearman']:.3f} | [{lo:.3f}, {hi:.3f}] |")
    lines += ["", "| quintile of z-score | " + " | ".join(str(i) for i in range(1, QUANTILES + 1)) + " |",
              "|---|" + "---|" * QUANTILES]
    for name in ("intra", "inter"):
        cells = {q["bin"]: f"{100 * q['accuracy']:.1f} (n={q['n']})" for q in result["quantiles"][name]}
        lines.append(f"| accuracy % by {name} | " + " | ".join(cells.get(i, "-") for i in range(1, QUANTILES + 1)) + " |")
    d = meta["decoding"]
    lines += ["", f"model `{meta['model']['name']}`, task `{meta['task']}` ({meta['data']}), {meta['steps']} steps "
              f"({meta['tokens_per_step']:g} tokens/step), temperature {d['temperature']}, {result['n_responses']} responses"]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, name in zip(axes, ("intra", "inter")):
        qs = result["quantiles"][name]
        ax.plot([q["z_mean"] for q in qs], [100 * q["accuracy"] for q in qs], marker="o")
        rho = result["pooled"][name]["spearman"]
        ax.set_title(f"accuracy vs {name}-sequence score (Spearman {rho:.2f})", fontsize=9)
        ax.set_xlabel(f"{name} score (z, quintile mean)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy %")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_correlation(cfg: CorrelationConfig) -> dict:
    with OutputLock(cfg.out) as out:
        return _run_locked(cfg, out)


def _run_locked(cfg: CorrelationConfig, out: Path) -> dict:
    cfg_path = out / "config.json"
    # the bootstrap only reads the rows; every other field (batch size and device included) shapes them
    mine = json.loads(json.dumps({k: v for k, v in to_dict(cfg).items() if k not in _NOT_ROWS}))
    mine["device"] = resolve_device(cfg.device).type
    if cfg_path.is_file():
        old = read_json(cfg_path, "run settings file")
        diff = changed_fields(old, mine, CorrelationConfig) if isinstance(old, dict) else ["settings"]
        if diff:
            raise MroError(f"{out} holds a correlation run with other settings ({diff[0]} differs); resume "
                           "with the same settings or use a new --out")
    rows, meta, reward = decode_and_score(cfg, out, settings=None if cfg_path.is_file() else (cfg_path, mine))
    add_inter(rows, reward)
    result = analyze(rows, cfg.seeds, cfg.bootstrap)
    result.update({"meta": meta, "config": mine, "hardware": hardware(), "date": now()})
    atomic_write_json(out / "summary.json", result)
    atomic_write_text(out / "table.md", table(result, meta))
    result["plot"] = str(plot(result, out / "correlation.png"))
    result["table"] = str(out / "table.md")
    return result
