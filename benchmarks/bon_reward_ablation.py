"""Which reward makes best-of-n by the final multi-reward strong on Countdown (``tts_countdown.py``)?

Best-of-21 at 5 steps (4 tokens per step), temperature 0.5, kept by one reward term at a time:
``R_tv`` alone (every answer token masked and re-predicted with the rest of the finished answer in
view), ``R_ppl`` alone, ``R_q`` alone (agreement with the majority answer + format), against the
three together. 500 held-out problems, decoding seed 0 (the full multi-reward row of
``tts_countdown.md`` is mean over 3 seeds).

    python benchmarks/bon_reward_ablation.py    # -> benchmarks/results/bon_reward_ablation.{json,md}
"""

from __future__ import annotations

from pathlib import Path

from mro.eval.records import hardware, now, save_report
from common.tts import COUNTDOWN, evaluate

RESULTS = Path(__file__).parent / "results"
#: reward terms kept; None = the search default (all three), whose run ``tts_countdown.py`` already made
VARIANTS = {"R_tv + R_ppl + R_q": None, "R_tv only": "tv", "R_ppl only": "ppl", "R_q only": "q"}


def main() -> None:
    rows = {}
    for name, rewards in VARIANTS.items():
        r = evaluate(COUNTDOWN, "best-of-n", 0, 0.5, only=5, k=21, select="reward",
                     **({"rewards": rewards} if rewards else {}))[5]
        rows[name] = {"rewards": rewards or "tv,ppl,q", "solved": round(100 * r["correct"], 1),
                      "nfe": r["nfe_per_example"]}
    lines = ["| best-of-21 kept by | solved % | NFE |", "|---|---|---|"]
    lines += [f"| {name} | {r['solved']:.1f} | {r['nfe']:.0f} |" for name, r in rows.items()]
    hw = hardware()
    lines += ["", f"model countdown-tiny; 500 held-out 3-number problems (numbers 1-100, targets up to 100, data seed "
                  f"1234); 5 steps (4 tokens per step), temperature 0.5, decoding seed 0; {hw['processor']}, torch "
                  f"{hw['torch']}; {now()}"]
    save_report(RESULTS, "bon_reward_ablation", lines, {"rows": rows})


if __name__ == "__main__":
    main()
