"""Which reward makes best-of-n by the final multi-reward strong on Countdown (``tts_countdown.py``)?

Best-of-21 at 5 steps (4 tokens per step), temperature 0.5, kept by one reward term at a time:
``R_tv`` alone (every answer token masked and re-predicted with the rest of the finished answer in
view), ``R_ppl`` alone, ``R_q`` alone (agreement with the majority answer + format), against the
three together. 500 held-out problems, decoding seed 0 (the full multi-reward row of
``tts_countdown.md`` is mean over 3 seeds).

    python benchmarks/bon_reward_ablation.py    # -> benchmarks/results/bon_reward_ablation.{json,md}
"""

from __future__ import annotations

import json
from pathlib import Path

from mro.eval.harness import EvalConfig, run_eval
from mro.eval.records import hardware, now

RESULTS = Path(__file__).parent / "results"
PROBLEMS = "n_numbers=3,max_number=100,max_target=100"
VARIANTS = {"R_tv + R_ppl + R_q": "tv,ppl,q", "R_tv only": "tv", "R_ppl only": "ppl", "R_q only": "q"}


def main() -> None:
    rows = {}
    for name, rewards in VARIANTS.items():
        out = Path("runs") / "bench_bon_ablation" / rewards.replace(",", "-")  # resumes a finished run
        s = run_eval(EvalConfig(model="countdown-tiny", task="countdown", n=500, task_options=PROBLEMS, steps=[5],
                                decode="best-of-n", select="reward", k=21, rewards=rewards, temperature=0.5, seed=0,
                                out=str(out), batch_size=250, progress=False))
        r = s["results"][0]
        rows[name] = {"rewards": rewards, "solved": round(100 * r["correct"], 1), "nfe": r["nfe_per_example"]}
    lines = ["| best-of-21 kept by | solved % | NFE |", "|---|---|---|"]
    lines += [f"| {name} | {r['solved']:.1f} | {r['nfe']:.0f} |" for name, r in rows.items()]
    hw = hardware()
    lines += ["", f"model countdown-tiny; 500 held-out 3-number problems (numbers 1-100, targets up to 100, data seed "
                  f"1234); 5 steps (4 tokens per step), temperature 0.5, decoding seed 0; {hw['processor']}, torch "
                  f"{hw['torch']}; {now()}"]
    (RESULTS / "bon_reward_ablation.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "bon_reward_ablation.json").write_text(json.dumps({"rows": rows, "hardware": hw, "date": now()},
                                                                 indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
