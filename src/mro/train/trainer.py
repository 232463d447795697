"""The one training spine (docs/architecture.md): a :class:`Trainer` on accelerate that runs any
:class:`Plugin` (SFT, the PPL scorer, RS, RL).

The spine owns what every trainer shares: the run folder (lock, ``run.json``, explicit
``--resume`` and its settings check), the checkpoint (weights, optimizer, scheduler, RNG, update;
atomic), the schedule (warm-up, then constant or cosine), the optimizer step (gradient
accumulation, clipping), the JSONL log, validation with the best model kept, ``max_minutes``,
the final model and the curves. A plug-in supplies only what differs: its model, one update
(usually a batch source and a loss through :meth:`Trainer.step`), and its validation score.

Each update must be a pure function of ``(seed, update)`` and the weights; then a run resumed
from its checkpoint continues exactly as if it had never stopped, and a run under
``accelerate launch`` with several processes computes what one process computes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm import tqdm

from mro.models.base import DiffusionLM
from mro.models.tiny import TinyDLM
from mro.train.checkpoint import load_checkpoint, save_checkpoint, save_model
from mro.train.config import TrainerConfig
from mro.train.curves import plot_curves
from mro.train.run_folder import LOG, append_log, locked, open_run, truncate_log
from mro.train.setup import make_accelerator, optimizer_for


class Plugin:
    """What a trainer supplies to the spine (override what differs from these defaults)."""

    #: the title of the curves and the progress bar
    title = "train"
    #: validate the starting model before the first update (it competes for ``best/``)
    validate_at_start = True

    def accumulation(self, world: int, rank: int) -> int:
        """Micro-batches per optimizer step on this process."""
        return 1

    def make_model(self, device: torch.device) -> DiffusionLM:
        raise NotImplementedError

    def read_data(self, model: DiffusionLM) -> None:
        """Read and check the training data before the run folder is written (bad data leaves no run)."""

    def before_training(self, trainer: "Trainer") -> None:
        """After the run folder is open, before the model is prepared (RS collects its data here)."""

    def on_start(self, trainer: "Trainer") -> None:
        """After the checkpoint is restored (``trainer.start`` is the first update to run)."""

    def update(self, trainer: "Trainer", update: int) -> dict:
        """Run update ``update`` (0-based); return the values its log line holds."""
        raise NotImplementedError

    def validate(self, trainer: "Trainer") -> tuple[dict, float]:
        """Values of the validation log line, and the score (higher is better) that picks ``best/``."""
        raise NotImplementedError

    def result(self, out: Path) -> Path:
        """The folder ``train_*`` returns."""
        return out / "best"

    def state(self) -> dict:
        """What the plug-in carries from update to update (JSON), saved with every checkpoint."""
        return {}

    def load_state(self, state: dict) -> None:
        """Take back :meth:`state` of a resumed run (``{}`` on a fresh one), before :meth:`on_start`."""


class _Window:
    """The log values of the updates since the last log line (their mean is logged)."""

    def __init__(self, state: dict | None = None):
        state = state or {}
        self.sums, self.n, self.last = dict(state.get("sums", {})), state.get("n", 0), dict(state.get("last", {}))

    def add(self, record: dict) -> None:
        self.n += 1
        for k, v in record.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.sums[k] = self.sums.get(k, 0.0) + v
            else:
                self.last[k] = v

    def mean(self) -> dict:
        out = {k: (self.sums[k] if self.n == 1 else round(self.sums[k] / self.n, 6)) if k in self.sums else self.last[k]
               for k in [*self.sums, *self.last]}
        self.sums, self.n, self.last = {}, 0, {}
        return out

    def state(self) -> dict:
        return {"sums": self.sums, "n": self.n, "last": self.last}


class Trainer:
    """Runs a :class:`Plugin` under the settings of a :class:`TrainerConfig`."""

    def __init__(self, cfg: TrainerConfig, plugin: Plugin):
        self.cfg, self.plugin = cfg, plugin

    def run(self) -> Path:
        """Train (or, with ``resume``, continue); return the plug-in's result folder."""
        with locked(self.cfg.out):
            return self._run()

    # ------------------------------------------------------------ setup

    def _run(self) -> Path:
        cfg, plugin = self.cfg, self.plugin
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        probe = make_accelerator(cfg, 1)
        steps = plugin.accumulation(probe.num_processes, probe.process_index)
        self.acc = acc = probe if steps == 1 else make_accelerator(cfg, steps)
        self.model = model = plugin.make_model(acc.device)  # a model that does not load leaves no run behind
        if not cfg.threads and acc.device.type == "cpu" and isinstance(model, TinyDLM):
            # auto: a tiny model's forward gains nothing from more threads, and --max-minutes counts CPU
            # time (benchmarks/results/rl_defaults/tune.md: 361 updates in 5 CPU-minutes at 2 threads, 511 at 1)
            torch.set_num_threads(1)
        plugin.read_data(model)
        self.out = out = open_run(cfg, acc)
        plugin.before_training(self)
        plan = cfg.plan()
        self.opt, self.sched = optimizer_for(model, cfg, plan.updates)
        raw = model.module
        self.prepared, self.opt = acc.prepare(raw, self.opt)
        # the schedule counts optimizer updates: not handed to accelerate, whose scheduler wrapper
        # steps once per process and would run it `num_processes` times as fast
        acc.register_for_checkpointing(self.sched)
        model.module = self.prepared
        try:
            self._restore()
            plugin.on_start(self)
            if self.start == 0 and cfg.val_every and plugin.validate_at_start:
                self._validate(0)
                self._checkpoint(0)
            self._loop(plan)
        finally:
            model.module = raw
        return plugin.result(out)

    def _restore(self) -> None:
        state = load_checkpoint(self.acc, self.out) if self.cfg.resume else None
        state = state or {}
        self.start = self.done = self.saved_at = self.validated_at = state.get("update", 0)
        self.best = state.get("best")  # None until the first validation
        self._used = (state.get("cpu_s", 0.0), state.get("wall_s", 0.0))
        self._t0 = (time.process_time(), time.time())
        self.window = _Window(state.get("window"))
        self.plugin.load_state(state.get("plugin") or {})
        self.log_path = self.out / LOG
        if self.acc.is_main_process:
            truncate_log(self.log_path, self.start)

    # ------------------------------------------------------------ the loop

    def _loop(self, plan) -> None:
        cfg = self.cfg
        bar = tqdm(range(self.start, plan.updates), initial=self.start, total=plan.updates, unit="upd",
                   desc=self.plugin.title, disable=not (cfg.progress and self.acc.is_main_process))
        for update in bar:
            if not self.budget_left():
                break
            record = self.plugin.update(self, update)
            self.done = done = update + 1
            self.window.add(record)
            if "loss" in record:
                bar.set_postfix(loss=f"{record['loss']:.4f}")
            if done % plan.log_every == 0 or done == plan.updates:
                self._log_train(done)
            validating = cfg.val_every and done % cfg.val_every == 0
            if validating:
                self._validate(done)
            if validating or done % plan.save_every == 0:
                self._checkpoint(done)
        bar.close()
        if self.window.n:  # stopped by the budget between log lines
            self._log_train(self.done)
        if self.done > self.saved_at:
            if cfg.val_every and self.done > self.validated_at:
                self._validate(self.done)
            self._checkpoint(self.done)
        self._finish()

    def _finish(self) -> None:
        """Save ``final/`` (the model where the run stopped) and draw the curves."""
        save_model(self.acc, self.model, self.prepared, self.out / "final")
        if self.acc.is_main_process:
            plot_curves(self.log_path, self.out / "curves.png", self.plugin.title)

    def step(self, losses: Iterable[Callable[[], torch.Tensor]]) -> tuple[float, list[float]]:
        """One optimizer update over micro-batches: each item computes its micro-batch's share of
        the update's loss (the shares sum to the loss). Returns the summed loss of this process and
        the gradient norms before clipping (none when clipping is off or DeepSpeed clips)."""
        acc, cfg = self.acc, self.cfg
        total, norms = 0.0, []
        for compute in losses:
            with acc.accumulate(self.prepared):
                loss = compute()
                acc.backward(loss * acc.gradient_accumulation_steps)  # accelerate divides by it
                if acc.sync_gradients and cfg.max_grad_norm > 0:
                    norm = acc.clip_grad_norm_(self.prepared.parameters(), cfg.max_grad_norm)
                    if norm is not None:  # DeepSpeed clips inside its own step and reports none
                        norms.append(float(norm))
                self.opt.step()
                if acc.sync_gradients:
                    self.sched.step()
                self.opt.zero_grad(set_to_none=True)
            total += float(loss.detach())
        return total, norms

    def mean_over_processes(self, values: dict) -> dict:
        """Each value averaged over the processes (each holds an equal share of the update)."""
        if self.acc.num_processes == 1:
            return values
        joined = self.acc.reduce(torch.tensor(list(values.values()), dtype=torch.float64,
                                              device=self.acc.device), "mean").tolist()
        return dict(zip(values, joined))

    # ------------------------------------------------------------ bookkeeping

    def elapsed(self) -> tuple[float, float]:
        """CPU and wall seconds of the run so far, over every resumption."""
        return (self._used[0] + time.process_time() - self._t0[0], self._used[1] + time.time() - self._t0[1])

    def budget_left(self) -> bool:
        """``max_minutes`` counts CPU time of this process (all its threads) across resumptions."""
        return self.cfg.max_minutes is None or self.elapsed()[0] < 60 * self.cfg.max_minutes

    def log(self, record: dict) -> None:
        cpu_s, wall_s = self.elapsed()
        if self.acc.is_main_process:
            append_log(self.log_path, {**record, "cpu_min": round(cpu_s / 60, 3), "wall_min": round(wall_s / 60, 3)})

    def _log_train(self, done: int) -> None:
        self.log({"kind": "train", "update": done, **self.window.mean(), "lr": self.sched.get_last_lr()[0]})

    def _validate(self, done: int) -> None:
        """Validate, keep the model as ``best/`` if it scores best so far, log."""
        module = self.acc.unwrap_model(self.prepared)
        training = module.training
        module.eval()
        values, score = self.plugin.validate(self)
        module.train(training)
        if self.best is None or score > self.best:
            self.best = score
            save_model(self.acc, self.model, self.prepared, self.out / "best")
        self.log({"kind": "val", "update": done, **values, "score": score, "best": self.best})
        self.validated_at = done

    def _checkpoint(self, done: int) -> None:
        cpu_s, wall_s = self.elapsed()
        save_checkpoint(self.acc, self.out, {"update": done, "best": self.best, "cpu_s": cpu_s, "wall_s": wall_s,
                                             "window": self.window.state(), "plugin": self.plugin.state()})
        self.saved_at = done
