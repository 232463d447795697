"""Block-wise KV caching for the sampler (docs/method.md section 2, "KV cache"; Fast-dLLM's prefix and dual caches).

At the first step of every block one full forward gives that step's logits and fills the cache
(every layer's keys and values of the whole sequence as it stands). Until the block ends, a step
recomputes only a window against the cached keys and values of everything else:

- ``prefix``: the window ``[block start, L)``, the current block and everything after it; the
  prompt and the finished blocks are read from the cache;
- ``dual``: the window ``[block start, block end)``; the prompt, the finished blocks and the
  still-masked suffix are read from the cache.

The next block's first step refills it; with ``cache_refresh r >= 1`` a full forward also
refills it every ``r`` steps inside a block (``r = 1``: every step, equal to ``none``), which
bounds how stale the cached keys and values get. ``none`` never caches (LLaDA's reference semantics).
The cache travels with the :class:`~mro.sampling.trajectory.Trajectory` it belongs to, so a
resumed ``denoise`` continues with it and copies of a row (test-time scaling's ``k``
candidates) share the forward that filled it. The sampler reaches the model only through
``DiffusionLM.logits_and_cache`` and ``DiffusionLM.window_logits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mro.errors import MroError
from mro.models.base import DiffusionLM, KVCache

CACHE_MODES = ("none", "prefix", "dual")


def check_cache_mode(mode: str) -> None:
    if mode not in CACHE_MODES:
        raise MroError(f"unknown cache {mode!r}; choose from {', '.join(CACHE_MODES)}")


def check_cache_refresh(refresh: int) -> None:
    if isinstance(refresh, bool) or not isinstance(refresh, int) or refresh < 0:
        raise MroError(f"cache_refresh must be an integer >= 0 (0 = refill at block boundaries only), got {refresh!r}")


def check_model_caches(model: DiffusionLM, mode: str) -> None:
    """``--cache prefix|dual`` on a model without a KV cache is a one-line error."""
    if mode != "none" and not model.supports_kv_cache:
        raise MroError(f"--cache {mode}: model {model.name} cannot cache keys and values; use --cache none")


@dataclass(frozen=True)
class BlockCache:
    """The KV cache of one block: filled by the full forward at the block's first step.

    ``lo .. hi - 1`` are the block's positions; ``guided``: the rows are the batch's conditional
    rows followed by its unconditional ones (classifier-free guidance runs both through the model);
    ``filled_at``: the trajectory's step whose full forward filled it (``cache_refresh`` counts from it).
    Never modified: a refill makes a new one.
    """

    kv: KVCache
    lo: int
    hi: int
    mode: str
    guided: bool = False
    filled_at: int = 0

    @property
    def batch_size(self) -> int:
        """Rows of the trajectory it serves (half the cached rows under guidance)."""
        return self.kv.batch_size // 2 if self.guided else self.kv.batch_size

    def rows(self, index: torch.Tensor) -> "BlockCache":
        """The cache of trajectory rows ``index`` (a row may repeat)."""
        if self.guided:
            index = torch.cat([index, index + self.batch_size])
        return BlockCache(self.kv.rows(index), self.lo, self.hi, self.mode, self.guided, self.filled_at)

    def conditional(self, index: torch.Tensor) -> KVCache:
        """The keys and values of rows ``index`` as the unguided model sees them."""
        return self.kv.rows(index)

    def serves(self, lo: int, hi: int, guided: bool, rows: int) -> bool:
        return (self.lo, self.hi, self.guided) == (lo, hi, guided) and self.batch_size == rows


def window_end(mode: str, hi: int, length: int) -> int:
    """Where the recomputed window of a cached step ends: the sequence's end (prefix) or the block's (dual)."""
    return length if mode == "prefix" else hi


def block_logits(model: DiffusionLM, x: torch.Tensor, attn: torch.Tensor, cache: BlockCache | None,
                 mode: str, lo: int, hi: int, guided: bool) -> tuple[torch.Tensor, BlockCache]:
    """``[R, hi - lo, V]`` logits of the block ``lo .. hi - 1`` for the forward rows ``x`` and the
    cache to carry on: ``cache`` when it serves this block (a windowed forward), else a new one
    from a full forward (the block's first step)."""
    rows = x.shape[0] // 2 if guided else x.shape[0]
    if cache is None or not cache.serves(lo, hi, guided, rows):
        logits, kv = model.logits_and_cache(x, attn)
        return logits[:, lo:hi], BlockCache(kv, lo, hi, mode, guided)
    logits = model.window_logits(x, attn, cache.kv, lo, window_end(mode, hi, x.shape[1]), logits_end=hi)
    return logits, cache


def replicated_block_logits(model: DiffusionLM, x: torch.Tensor, attn: torch.Tensor, cache: BlockCache | None,
                            mode: str, lo: int, hi: int, guided: bool,
                            replicas: int) -> tuple[torch.Tensor, BlockCache]:
    """:func:`block_logits` when the ``B`` trajectory rows are runs of ``replicas`` identical copies and
    ``x`` holds one forward row per run (with guidance: the runs' conditional rows, then their
    unconditional ones). Returns the per-run logits and a cache for all ``B`` rows; a refill is
    computed once per run and shared by its copies."""
    runs = x.shape[0] // 2 if guided else x.shape[0]
    dev = x.device
    if cache is not None and cache.serves(lo, hi, guided, runs * replicas):
        first = torch.arange(0, runs * replicas, replicas, device=dev)
        logits, _ = block_logits(model, x, attn, cache.rows(first), mode, lo, hi, guided)
        return logits, cache
    logits, fresh = block_logits(model, x, attn, None, mode, lo, hi, guided)
    return logits, fresh.rows(torch.arange(runs, device=dev).repeat_interleave(replicas))


@torch.no_grad()
def cached_logits_at(model: DiffusionLM, cache: BlockCache, x: torch.Tensor, attn: torch.Tensor,
                     rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor | None:
    """``[n, V]`` logits of one position per input row, with the cache of trajectory ``rows``, when every
    position lies in the cached block (else None: the caller runs a full forward).

    Token verification (``R_tv``) re-reads states of the current block this way: the block (and,
    ``prefix``, what follows it) is recomputed, the rest read from the block's cache.
    """
    if len(positions) == 0 or not bool(((positions >= cache.lo) & (positions < cache.hi)).all()):
        return None
    end = window_end(cache.mode, cache.hi, x.shape[1])
    logits = model.window_logits(x, attn, cache.conditional(rows), cache.lo, end, logits_end=cache.hi)
    return logits[torch.arange(len(positions), device=x.device), positions - cache.lo]
