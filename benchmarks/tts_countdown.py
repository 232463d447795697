"""Test-time scaling on the shipped tiny Countdown model: MRO vs vanilla and baselines.

500 held-out 3-number problems (numbers 1-100, targets up to 100), 3 decoding seeds, at the
setting where vanilla decoding loses most (4 tokens per step = 5 steps, from
``countdown_tokens_per_step.py``) and at half its tokens per step (10 steps); the methods are
those of ``common/tts.py`` (vanilla, TTS-MRO w = 1 and 2, TTS-CBR, best-of-n at equal forward
passes).

    python benchmarks/tts_countdown.py    # -> benchmarks/results/tts_countdown.{json,md,png}
"""

from common.tts import COUNTDOWN, main

if __name__ == "__main__":
    main(COUNTDOWN)
