"""The ``mro`` command: parse a config, call one function per verb.

Errors meant for users (``MroError``) print as one line, ``mro: error: ...``, exit status 2. So
do bad flags (argparse's own errors) and, as a last net, a file that cannot be read or written
or is not UTF-8 text wherever it is opened.
"""

from __future__ import annotations

import argparse
import sys

import mro
from mro.config import add_arguments, from_args
from mro.errors import MroError


def _train_sft(args):
    from mro.train.sft import SFTConfig, train_sft

    out = train_sft(from_args(SFTConfig, args))
    print(f"saved model to {out}")


def _train_ar(args):
    from mro.train.ppl_scorer import ARConfig, train_ar

    out = train_ar(from_args(ARConfig, args))
    print(f"saved scorer to {out}")


def _train_rl(args):
    from mro.train.rl import RLConfig, train_rl

    out = train_rl(from_args(RLConfig, args))
    print(f"best model (by validation): {out}")


def _train_rs(args):
    from mro.train.rejection import RSConfig, train_rs

    out = train_rs(from_args(RSConfig, args))
    print(f"best model (by validation): {out}")


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


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line, ``mro: error: ...``, exit status 2 (no usage dump)."""

    def error(self, message: str):
        sub = self.prog[len("mro"):].strip()
        hint = f" (see mro {sub + ' ' if sub else ''}--help)"
        print(f"mro: error: {' '.join(message.split())}{hint}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    from mro.eval.correlation import CorrelationConfig
    from mro.eval.demo import DemoConfig
    from mro.eval.harness import EvalConfig
    from mro.eval.show import ShowConfig
    from mro.train.ppl_scorer import ARConfig
    from mro.train.rejection import RSConfig
    from mro.train.rl import RLConfig
    from mro.train.sft import SFTConfig

    parser = _Parser(prog="mro", description="Multi-Reward Optimization for masked diffusion LMs")
    parser.add_argument("--version", action="version", version=f"mro {mro.__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    train = verbs.add_parser("train", help="train a model").add_subparsers(dest="mode", required=True)
    sft = train.add_parser("sft", help="masked-diffusion SFT: the built-in tiny model on a task, or any model on prompt/response pairs")
    add_arguments(sft, SFTConfig)
    sft.set_defaults(func=_train_sft)
    ar = train.add_parser("ar", help="train the built-in tiny causal LM that scores perplexity (R_ppl)")
    add_arguments(ar, ARConfig)
    ar.set_defaults(func=_train_ar)
    rl = train.add_parser("rl", help="reinforcement learning with the multi-reward and SGRO (REINFORCE, optional PPO/KL)")
    add_arguments(rl, RLConfig)
    rl.set_defaults(func=_train_rl)
    rs = train.add_parser("rs", help="rejection sampling: collect TTS-MRO trajectories, fine-tune on their transitions")
    add_arguments(rs, RSConfig)
    rs.set_defaults(func=_train_rs)
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad flag (2, already printed as one line)
        return e.code if isinstance(e.code, int) else 2
    try:
        args.func(args)
    except MroError as e:
        print(f"mro: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as e:
        print(f"mro: error: a file is not UTF-8 text ({e.reason} at byte {e.start})", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:
            raise
        print(f"mro: error: {e.strerror or e}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mro: interrupted", file=sys.stderr)
        return 130
    return 0
