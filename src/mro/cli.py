"""The ``mro`` command: parse a config, call one function per verb.

Errors meant for users (``MroError``) print as one line, ``mro: error: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from mro.config import add_arguments, from_args
from mro.errors import MroError


def _train_sft(args):
    from mro.train.sft import SFTConfig, train_sft

    out = train_sft(from_args(SFTConfig, args))
    print(f"saved model to {out}")


def _train_ar(args):
    from mro.train.ar import ARConfig, train_ar

    out = train_ar(from_args(ARConfig, args))
    print(f"saved scorer to {out}")


def _eval(args):
    from mro.eval.harness import EvalConfig, run_eval

    summary = run_eval(from_args(EvalConfig, args))
    if summary:
        print(open(summary["table"]).read())
        print(f"plot: {summary['plot']}")


def _show(args):
    from mro.eval.show import ShowConfig, run_show

    run_show(from_args(ShowConfig, args))


def _correlation(args):
    from mro.eval.correlation import CorrelationConfig, run_correlation

    result = run_correlation(from_args(CorrelationConfig, args))
    print(open(result["table"]).read())
    print(f"plot: {result['plot']}")


def _demo(args):
    from mro.eval.demo import DemoConfig, run_demo

    run_demo(from_args(DemoConfig, args))


def build_parser() -> argparse.ArgumentParser:
    from mro.eval.correlation import CorrelationConfig
    from mro.eval.demo import DemoConfig
    from mro.eval.harness import EvalConfig
    from mro.eval.show import ShowConfig
    from mro.train.ar import ARConfig
    from mro.train.sft import SFTConfig

    parser = argparse.ArgumentParser(prog="mro", description="Multi-Reward Optimization for masked diffusion LMs")
    verbs = parser.add_subparsers(dest="verb", required=True)
    train = verbs.add_parser("train", help="train a model").add_subparsers(dest="mode", required=True)
    sft = train.add_parser("sft", help="masked-diffusion SFT of the built-in tiny model on a task")
    add_arguments(sft, SFTConfig)
    sft.set_defaults(func=_train_sft)
    ar = train.add_parser("ar", help="train the built-in tiny causal LM that scores perplexity (R_ppl)")
    add_arguments(ar, ARConfig)
    ar.set_defaults(func=_train_ar)
    ev = verbs.add_parser("eval", help="evaluate a model on a task over a grid of step counts")
    add_arguments(ev, EvalConfig)
    ev.set_defaults(func=_eval)
    show = verbs.add_parser("show", help="decode one example and render its trajectory (terminal, PNG, HTML)")
    add_arguments(show, ShowConfig)
    show.set_defaults(func=_show)
    analyze = verbs.add_parser("analyze", help="analyses").add_subparsers(dest="analysis", required=True)
    corr = analyze.add_parser("correlation", help="accuracy vs intra/inter-sequence correlation scores")
    add_arguments(corr, CorrelationConfig)
    corr.set_defaults(func=_correlation)
    demo = verbs.add_parser("demo", help="the main job on the embedded default model")
    add_arguments(demo, DemoConfig)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except MroError as e:
        print(f"mro: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mro: interrupted", file=sys.stderr)
        return 130
    return 0
