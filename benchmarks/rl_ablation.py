"""MRO's rewards in RL, one factor at a time (docs/method.md section 7), on both tiny testbeds.

Every arm is the task's base recipe ``configs/recipes/<task>/rl/fair-base.yaml`` (correctness
only, reward-to-go credit, a fixed number of updates) with the overrides of :data:`ARMS`, so each
arm differs from the base (or from the arm it names) by what its overrides say. Same seeds, same
problem stream (the generator's training split, seeded by update), same updates, same
validation (256 held-out generator problems; the kept model is the best validation, never the
test problems); each kept model is then decoded greedily on the README's test set. Main rows run
3 seeds, ablation rows seed 0. ``q-cpu`` is the correctness-only arm given the CPU-minutes of
the main MRO arm instead of its updates (equal CPU-minutes). The RS arms (Countdown) compare
rejection sampling with and without the reference answers; the ``rs-then`` arms run RL from the
shipped RS model (RS, then RL), against its own test row (RS alone).

    python benchmarks/rl_ablation.py --task countdown            # skips finished runs, resumes partial ones
    python benchmarks/rl_ablation.py --task sudoku --only q tv
    python benchmarks/rl_ablation.py --task countdown --report-only
    -> benchmarks/results/rl_ablation/<task>/{results.md,results.json,curves.png,runs/*}
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from mro.io import atomic_write_json, atomic_write_text, read_json

from common.recipes import REPO, command, recipe, train
from common.runs import (Bench, evaluate, finished, mean_std, parse_bench_args, provenance, read_log, record, run_jobs,
                         started, train_stats, val_records)

ROOT = Path(__file__).resolve().parent / "results" / "rl_ablation"
SPREAD = {"intra_scale": "spread"}
#: R_tv at a quarter of R_q's spread (both verifiers logged) plus SGRO's potential shaping
TV_SHAPING = {"rewards": "tv=0.25,q", **SPREAD, "compare_verifiers": True, "shaping": True}

#: per task: the test set, its step counts, the metric, the SGRO rollout step count
TASKS = {
    "countdown": dict(test=dict(task="countdown", n=1000, task_options="n_numbers=3,max_number=100,max_target=100",
                                data_seed=1234), steps=(20, 10, 5), metric="correct", long=20, headline=5,
                      vanilla="countdown-tiny"),
    "sudoku": dict(test=dict(task="sudoku", n=500, task_options="min_blanks=10,max_blanks=12", data_seed=1234),
                   steps=(12, 4, 3, 2), metric="solved", long=12, headline=3, vanilla="sudoku-tiny"),
}


def sgro(task: str, **more) -> dict:
    """SGRO at the task's long rollouts (every step one token or so), R_tv per group, shaping, 40 updates."""
    return {"steps": [TASKS[task]["long"]], "rewards": "tv=0.25,q", **SPREAD, "shaping": True, "updates": 40, **more}


def arms(task: str) -> dict[str, tuple[dict, str]]:
    """``name -> (overrides of the base recipe, what the arm changes)``, in the order they run."""
    return {
        "q": ({}, "the base: correctness only (R_q), to-go credit"),
        "tv": ({"rewards": "tv=0.25,q", **SPREAD, "compare_verifiers": True}, "q + R_tv (policy verifier)"),
        "tv-ref": ({"rewards": "tv=0.25,q", **SPREAD, "verifier": "reference", "compare_verifiers": True},
                   "tv, verifier = frozen starting model"),
        "ppl": ({"rewards": "ppl=0.25,q", **SPREAD}, "q + R_ppl"),
        "tv-ppl": ({"rewards": "tv=0.25,ppl=0.25,q", **SPREAD}, "q + R_tv + R_ppl"),
        "judge": ({"rewards": "tv=0.25,ppl=0.25,q", **SPREAD, "judge": "final"},
                  "tv-ppl, read once on the finished response"),
        "tv-ppl-raw": ({"rewards": "tv=0.1,ppl=0.1,q"}, "tv-ppl at the old raw weights 0.1 (no scaling)"),
        "label-free": ({"labels": "vote"}, "q against the vote of the K rollouts (no reference answers)"),
        "shaping": ({"shaping": True}, "q + potential shaping"),
        "tv-shaping": (TV_SHAPING,
                       "tv + potential shaping (R_tv, R_q and SGRO's potential)"),
        "old-mro": ({"rewards": "tv=0.1,ppl=0.1,q", "shaping": True, "credit": "group", "groups": 2},
                    "the README's former MRO arm (group credit, 2 groups, raw 0.1 weights, shaping)"),
        "old-mro-to-go": ({"rewards": "tv=0.1,ppl=0.1,q", "shaping": True, "groups": 2},
                          "old-mro with to-go credit"),
        "sgro-q": ({"steps": [TASKS[task]["long"]], "updates": 40}, f"q at {TASKS[task]['long']}-step rollouts, 40 updates"),
        "sgro-w1": (sgro(task), "sgro-q + R_tv per group of w = 1 + shaping"),
        "sgro-w2": (sgro(task, w=2), "sgro-w1 with w = 2"),
        "sgro-w4": (sgro(task, w=4), "sgro-w1 with w = 4"),
        "sgro-w2-g2": (sgro(task, w=2, groups=2), "sgro-w2 with 2 groups drawn (importance-weighted)"),
        "q-160": ({"updates": 160}, "q for 160 updates (a longer horizon)"),
        "tv-shaping-160": ({**TV_SHAPING, "updates": 160},
                           "tv-shaping for 160 updates (against q-160)"),
        "q-cpu-160": ({"updates": 100000, "max_minutes": 13.5},
                      "q for tv-shaping-160's CPU-minutes (13.5) instead of its updates"),
        # RS, then RL: from the shipped RS model at the step of the former RS-then-RL recipe (3e-5; at the
        # base's 1e-4 the RS model lost validation at once, the -lr1e-4 row)
        "rs-then-q-160": ({"model": RS_MODEL[task], "lr": 3e-5, "updates": 160},
                          f"q-160 from {RS_MODEL[task]} (RS, then RL) at lr 3e-5"),
        "rs-then-tv-shaping-160": ({"model": RS_MODEL[task], "lr": 3e-5, **TV_SHAPING, "updates": 160},
                                   "rs-then-q-160 + R_tv and shaping (RS, then RL with MRO's rewards)"),
        "rs-then-tv-shaping-160-lr1e-4": ({"model": RS_MODEL[task], **TV_SHAPING, "updates": 160},
                                          "rs-then-tv-shaping-160 at the base's lr 1e-4"),
        "q-cpu": ({"updates": 100000, "max_minutes": CPU_BUDGET[task]},
                  f"q for the main MRO arm's CPU-minutes ({CPU_BUDGET[task]}) instead of its updates"),
    }


#: the main MRO arms (3 seeds): tv, the MRO arm with the best seed-0 validation score on Countdown of
#: the first round (mean over its validation step counts: tv 51.0, judge 50.6, ppl 50.2, tv-ref 49.0,
#: tv-ppl 49.0), on both testbeds; on Countdown also shaping (seed-0 validation 52.7, the best of all
#: arms) and tv-shaping (the two together), run in a second round, and in a third both q and
#: tv-shaping for twice the updates (tv-shaping's validation still rose at update 80 in 2 of 3 seeds);
#: in a fourth, RS with and without answers over 3 seeds (the label-free floor), and RS then RL
#: (q-160 and tv-shaping-160 from the shipped RS model)
MAIN = {"countdown": ("tv", "shaping", "tv-shaping", "q-160", "tv-shaping-160", "q-cpu-160", "rs", "rs-label-free",
                      "rs-then-q-160", "rs-then-tv-shaping-160"), "sudoku": ("tv",)}
#: the shipped RS model each task's "RS, then RL" arms start from (RS alone: its own test row)
RS_MODEL = {"countdown": "countdown-tiny-rs", "sudoku": "sudoku-tiny-rs"}
#: q-cpu's CPU-minutes: the main MRO arm's at seed 0
CPU_BUDGET = {"countdown": 6.4, "sudoku": 2.0}
SEEDS = (0, 1, 2)

#: rejection sampling with and without answers (Countdown): the rs-20 recipe, and label-free overrides
RS_ARMS = {"rs": ({}, "RS (rs-20 recipe): best-of-2 by vote at 20 steps, keep the correct ones"),
           "rs-label-free": ({"select": "reward", "rewards": "tv,ppl,q", "keep": "all"},
                             "RS without answers: keep the best-of-2 by the multi-reward (R_q against the vote)")}


def seeds_of(task: str, arm: str) -> tuple[int, ...]:
    return SEEDS if arm in ("q", "q-cpu", *MAIN[task]) else (0,)


def test(task: str, bench: Bench, model, out: Path) -> dict:
    t = TASKS[task]
    return evaluate(model, out, t["metric"], steps=list(t["steps"]), seed=0,
                    **{**t["test"], "n": bench.test_n or t["test"]["n"]})


def run_arm(bench: Bench, task: str, arm: str, seed: int) -> dict:
    """Train one arm/seed (resuming a partial run), test its kept model; kept in eval.json."""
    out = bench.run_dir(f"{arm}-s{seed}")
    if done := finished(out):
        return done
    rs = arm in RS_ARMS
    base = recipe(task, "rs-20") if rs else recipe(task, "fair-base")
    extra, what = (RS_ARMS if rs else arms(task))[arm]
    overrides = {**extra, "seed": seed, **dict(bench.overrides), "out": out}
    t0 = time.time()
    best = train(base, **overrides, resume=started(out))
    result = {"arm": arm, "seed": seed, "recipe": str(base.relative_to(REPO)), "overrides": extra, "what": what,
              "command": command(base, **overrides), "wall_s": round(time.time() - t0, 1)}
    result["solved"] = test(task, bench, best, out / "eval")
    result.update(train_stats(out))
    result["terms"] = term_summary(read_log(out))
    return record(out, result)


def term_summary(log: list[dict]) -> dict:
    """Means over the run's train lines of what the rewards did (docs/method.md section 7)."""
    rows = [r for r in log if r["kind"] == "train"]
    keys = sorted({k for r in rows for k in r if k.endswith(("_corr", "_share", "_std", "_scale"))}
                  | {"same_reward_frac", "grad_norm", "solved"})
    return {k: round(statistics.mean(r[k] for r in rows if k in r), 4) for k in keys if any(k in r for r in rows)}


def vanilla(bench: Bench, task: str) -> dict:
    path = bench.root / "vanilla.json"
    if not path.is_file():
        atomic_write_json(path, test(task, bench, TASKS[task]["vanilla"], bench.run_dir("vanilla-eval")))
    return read_json(path)


def rs_start(bench: Bench, task: str) -> dict | None:
    """The test result of the RS model the "RS, then RL" arms start from (RS alone), once any ran."""
    path = bench.root / "rs_start.json"
    if not path.is_file():
        if not any(finished(bench.run_dir(f"{a}-s{s}")) for a in arms(task) if a.startswith("rs-then")
                   for s in SEEDS):
            return None
        atomic_write_json(path, test(task, bench, RS_MODEL[task], bench.run_dir("rs-start-eval")))
    return read_json(path)


def all_arms(task: str) -> list[str]:
    return [*arms(task), *(RS_ARMS if task == "countdown" else {})]


def finished_runs(bench: Bench, task: str) -> list[dict]:
    """Every finished run, arm by arm (an ablation arm that also ran the main rows' seeds shows them)."""
    return [r for a in all_arms(task) for s in SEEDS if (r := finished(bench.run_dir(f"{a}-s{s}")))]


def settings(r: dict) -> str:
    """The arm's overrides of its base recipe, as flags."""
    return " ".join(f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in r["overrides"].items()) or "(the base)"


def report(bench: Bench, task: str, results: list[dict], report_only: bool) -> None:
    t = TASKS[task]
    hw, date = provenance(bench.root / "results.json", report_only)
    base = vanilla(bench, task)
    steps = t["steps"]
    head = f"{t['headline']}"
    lines = [f"# MRO's rewards in RL, one factor at a time: {task}", "",
             f"Test: {t['test']['n']} held-out problems ({t['test']['task_options']}, generator seed "
             f"{t['test']['data_seed']}), greedy, solved % at each step count; kept model = best validation "
             f"(256 generator problems, never the test set). Base recipe "
             f"`configs/recipes/{task}/rl/fair-base.yaml`; each arm's overrides are in its row. Main rows: seeds "
             f"{list(SEEDS)} (mean ± std); ablation rows: seed 0. Made by `python benchmarks/rl_ablation.py --task "
             f"{task}` ({date}).", "",
             "| arm | what changes | overrides of the base | " + " | ".join(f"{s} steps" for s in steps)
             + " | val (best) | CPU-min | updates | best update |",
             "|---|---|---|" + "---|" * (len(steps) + 4),
             f"| vanilla ({t['vanilla']}) | - | - | " + " | ".join(f"{base[str(s)]:.1f}" for s in steps)
             + " | - | - | - | - |"]
    if start := rs_start(bench, task):
        lines.append(f"| RS alone ({RS_MODEL[task]}, the start of the rs-then arms) | - | - | "
                     + " | ".join(f"{start[str(s)]:.1f}" for s in steps) + " | - | - | - | - |")
    for arm in all_arms(task):
        rows = [r for r in results if r["arm"] == arm]
        if not rows:
            continue
        val = mean_std([statistics.mean(r["best_val"].values()) for r in rows])
        lines.append(f"| {arm} ({len(rows)} seed{'s' if len(rows) > 1 else ''}) | {rows[0]['what']} | "
                     f"`{settings(rows[0])}` | "
                     + " | ".join(mean_std([r["solved"][str(s)] for r in rows]) for s in steps)
                     + f" | {val} | {mean_std([r['cpu_min'] for r in rows])} | "
                     f"{mean_std([r['updates'] for r in rows])} | {', '.join(str(r['best_update']) for r in rows)} |")
    lines += ["", "`val (best)`: the kept model's validation solved %, mean over the validation step counts."]
    lines += at_equal_updates(bench, task, results, head)
    lines += ["",
              "## What each term did (means over the run's updates)", "",
              "Within-problem correlation of each term's trajectory total with correctness (`_corr`; an update "
              "where no problem has both varying counts 0, which dilutes it where rollouts are mostly all "
              "right, e.g. Sudoku at 12 steps), its "
              "within-problem std (`_std`), its share of the advantage's variance (`_share`, the shares sum to "
              "1), the scale factor of `intra_scale: spread` (`_scale`), the share of problems whose K rollouts "
              "all got the same return, and the gradient norm before clipping (1.0).", "",
              "| arm | terms |", "|---|---|"]
    for r in results:
        if r["seed"] == 0 and r.get("terms"):
            lines.append(f"| {r['arm']} | " + ", ".join(f"{k} {v:g}" for k, v in r["terms"].items()) + " |")
    lines += ["", "## Commands", ""]
    lines += [f"- `{r['arm']}` seed {r['seed']}: `{r['command'].replace(str(REPO) + '/', '')}`" for r in results]
    lines += ["", f"Hardware: {json.dumps(hw)}"]
    atomic_write_text(bench.root / "results.md", "\n".join(lines) + "\n")
    atomic_write_json(bench.root / "results.json", {"vanilla": base, "runs": results, "hardware": hw, "date": date})
    plot(bench, task, results, head)


def at_equal_updates(bench: Bench, task: str, results: list[dict], head: str) -> list[str]:
    """Validation solved % at the headline step count after each validated update, mean over the
    arm's seeds: the arms side by side at equal updates, whatever checkpoint each kept."""
    curves: dict[str, dict[int, list[float]]] = {}
    for r in results:
        if r["arm"] in RS_ARMS:
            continue
        for v in val_records(bench.run_dir(f"{r['arm']}-s{r['seed']}")):
            if head in v["solved"]:
                curves.setdefault(r["arm"], {}).setdefault(v["update"], []).append(100 * v["solved"][head])
    updates = sorted({u for c in curves.values() for u in c if u <= 80})
    if not updates:
        return []
    lines = ["", f"## At equal updates: validation solved % at {head} steps (mean over the arm's seeds)", "",
             "| arm | seeds | " + " | ".join(f"update {u}" for u in updates) + " | mean of updates > 0 |",
             "|---|---|" + "---|" * (len(updates) + 1)]
    for arm, c in curves.items():
        seeds = max(len(v) for v in c.values())
        later = [statistics.mean(c[u]) for u in updates if u > 0 and u in c]
        lines.append(f"| {arm} | {seeds} | " + " | ".join(f"{statistics.mean(c[u]):.1f}" if u in c else "-"
                                                         for u in updates)
                     + f" | {statistics.mean(later):.1f} |" if later else " | - |")
    return lines


def plot(bench: Bench, task: str, results: list[dict], head: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    cmap = plt.get_cmap("tab20")
    names = [a for a in all_arms(task) if a not in RS_ARMS]
    for r in results:
        if r["arm"] in RS_ARMS:
            continue
        vals = val_records(bench.run_dir(f"{r['arm']}-s{r['seed']}"))
        color = cmap(names.index(r["arm"]) % 20)
        for ax, x in zip(axes, ("update", "cpu_min")):
            key = head if head in vals[0]["solved"] else next(iter(vals[0]["solved"]))
            ax.plot([v[x] for v in vals], [100 * v["solved"][key] for v in vals], color=color, lw=1.2, alpha=0.85,
                    label=r["arm"] if r["seed"] == 0 and x == "update" else None)
    axes[0].set_xlabel("updates")
    axes[1].set_xlabel("CPU-minutes of training")
    axes[0].set_ylabel(f"validation solved % at {head} steps (greedy)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"RL on {task}: validation during training, every arm")
    fig.tight_layout()
    fig.savefig(bench.root / "curves.png", dpi=110)
    plt.close(fig)


def main() -> None:
    task = sys.argv[sys.argv.index("--task") + 1] if "--task" in sys.argv else "countdown"
    names = [*arms("countdown"), *RS_ARMS]
    args, bench = parse_bench_args(__doc__, ROOT / task, names, "(not used)", more=lambda p: p.add_argument(
        "--task", choices=list(TASKS), default="countdown", help="testbed"))
    if not args.report_only:
        vanilla(bench, task)
        todo = sorted([(a, s) for a in (args.only or all_arms(task)) for s in seeds_of(task, a)],
                      key=lambda j: j[1])  # every arm's seed 0 first (the ablation), then the main rows' seeds
        run_jobs(run_arm, [(bench, task, a, s) for a, s in todo if a in all_arms(task)], args.jobs)
    report(bench, task, finished_runs(bench, task), args.report_only)
    print((bench.root / "results.md").read_text())


if __name__ == "__main__":
    main()
