"""Training losses of a masked diffusion LM (docs/method.md section 1).

LLaDA's loss: per example draw ``t ~ U(eps, 1]``, mask each maskable response token with
probability ``t`` (the prompt, and pre-filled response positions, are never masked), and
minimise ``-(1/t) * sum over masked positions of log p(true token | masked sequence)``,
normalised by the example's number of maskable positions, averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mro.models.base import DiffusionLM


def masked_diffusion_loss(model: DiffusionLM, tokens: torch.Tensor, maskable: torch.Tensor,
                          attention_mask: torch.Tensor | None = None,
                          generator: torch.Generator | None = None, eps: float = 1e-3,
                          ordered_fraction: float = 0.0, share: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """The masked-diffusion ELBO loss of a batch: the mean over its rows of :func:`masked_diffusion_rows`.

    ``share = (rank, world)``: this process's rows ``rank::world`` of the batch (the draws are made
    for the whole batch, so every row is noised as in one process); averaged over the processes,
    as distributed data parallel averages gradients, the shares give the whole batch's loss.
    """
    rows = masked_diffusion_rows(model, tokens, maskable, attention_mask, generator, eps, ordered_fraction,
                                 slice(share[0], None, share[1]))
    return rows.sum() / rows.shape[0]


def masked_diffusion_rows(model: DiffusionLM, tokens: torch.Tensor, maskable: torch.Tensor,
                          attention_mask: torch.Tensor | None = None,
                          generator: torch.Generator | None = None, eps: float = 1e-3,
                          ordered_fraction: float = 0.0, rows: slice | list[int] | None = None) -> torch.Tensor:
    """``[len(rows)]`` the masked-diffusion loss of each of the batch's ``rows`` (default: all).

    Args:
        tokens: ``[B, N]`` clean sequences (prompt + reference response).
        maskable: ``[B, N]`` True where a token may be masked (the response to be generated).
        attention_mask: ``[B, N]`` 1 for real tokens (left padding is 0).
        generator: RNG for ``t`` and the masking (makes a step reproducible); a CPU generator
            draws on the CPU whatever the model's device.
        eps: lower bound of the mask ratio (LLaDA's ``p_mask = (1 - eps) t + eps``).
        ordered_fraction: share of rows whose masks are the last ``ceil(p_mask * n)`` of their
            ``n`` maskable positions (left to right, as a block-diffusion or autoregressive model
            sees a response) instead of i.i.d. positions; 0 is LLaDA's loss.
        rows: the rows to compute (a process's share, a micro-batch of it); the draws are made for
            the whole batch whichever rows are computed.
    """
    b = tokens.shape[0]
    dev = tokens.device
    draw = generator.device if generator is not None else dev
    maskable_d = maskable.to(draw)
    t = torch.rand(b, device=draw, generator=generator)
    p_mask = ((1 - eps) * t + eps)[:, None].expand(tokens.shape)
    noise = (torch.rand(tokens.shape, device=draw, generator=generator) < p_mask) & maskable_d
    if ordered_fraction > 0:
        ordered = torch.rand(b, device=draw, generator=generator) < ordered_fraction
        n = maskable_d.sum(-1, keepdim=True)
        rank = maskable_d.long().cumsum(-1) - 1  # 0..n-1 over the maskable positions
        suffix = maskable_d & (rank >= n - torch.ceil(p_mask[:, :1] * n))
        noise = torch.where(ordered[:, None], suffix, noise)
    mine = slice(None) if rows is None else rows
    tokens, maskable = tokens[mine], maskable[mine]
    noise, p_mask = noise[mine].to(dev), p_mask[mine].to(dev)
    attention_mask = attention_mask[mine] if attention_mask is not None else None
    noisy = tokens.masked_fill(noise, model.mask_token_id)
    logits = model.logits(noisy, attention_mask)
    ce = F.cross_entropy(logits[noise].float(), tokens[noise], reduction="none")
    lengths = maskable.sum(-1, keepdim=True).clamp_min(1).expand_as(tokens)
    row_of = torch.arange(tokens.shape[0], device=dev)[:, None].expand_as(tokens)[noise]
    per = torch.zeros(tokens.shape[0], device=dev, dtype=ce.dtype)
    return per.index_add(0, row_of, ce / (p_mask[noise] * lengths[noise]))


def committed_logprobs(model: DiffusionLM, states: torch.Tensor, attention_mask: torch.Tensor | None,
                       tokens: torch.Tensor, committed: torch.Tensor, prompt_length: int,
                       temperature: float, banned: list[int]) -> torch.Tensor:
    """``[B, G]`` log-probabilities of ``tokens`` at the ``committed`` response positions, given ``states``.

    The policy of docs/method.md section 7: the sampler's own distribution at this state,
    ``softmax(logits / temperature)`` with the ``banned`` ids (mask, and EOS when suppressed) at
    ``-inf``, exactly as the sampler drew from it; 0 where nothing was committed. Differentiable.
    """
    logits = model.logits(states, attention_mask)[:, prompt_length:].float()
    logits = logits.index_fill(-1, torch.tensor(banned, device=logits.device), float("-inf"))
    if temperature > 0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    return torch.where(committed, logp, torch.zeros_like(logp))
