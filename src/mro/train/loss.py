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
                          ordered_fraction: float = 0.0) -> torch.Tensor:
    """The masked-diffusion ELBO loss of a batch.

    Args:
        tokens: ``[B, N]`` clean sequences (prompt + reference response).
        maskable: ``[B, N]`` True where a token may be masked (the response to be generated).
        attention_mask: ``[B, N]`` 1 for real tokens (left padding is 0).
        generator: RNG for ``t`` and the masking (makes a step reproducible).
        eps: lower bound of the mask ratio (LLaDA's ``p_mask = (1 - eps) t + eps``).
        ordered_fraction: share of rows whose masks are the last ``ceil(p_mask * n)`` of their
            ``n`` maskable positions (left to right, as a block-diffusion or autoregressive model
            sees a response) instead of i.i.d. positions; 0 is LLaDA's loss.
    """
    b = tokens.shape[0]
    dev = tokens.device
    t = torch.rand(b, device=dev, generator=generator)
    p_mask = ((1 - eps) * t + eps)[:, None].expand_as(tokens)
    noise = (torch.rand(tokens.shape, device=dev, generator=generator) < p_mask) & maskable
    if ordered_fraction > 0:
        ordered = torch.rand(b, device=dev, generator=generator) < ordered_fraction
        n = maskable.sum(-1, keepdim=True)
        rank = maskable.long().cumsum(-1) - 1  # 0..n-1 over the maskable positions
        suffix = maskable & (rank >= n - torch.ceil(p_mask[:, :1] * n))
        noise = torch.where(ordered[:, None], suffix, noise)
    noisy = tokens.masked_fill(noise, model.mask_token_id)
    logits = model.logits(noisy, attention_mask)
    ce = F.cross_entropy(logits[noise].float(), tokens[noise], reduction="none")
    lengths = maskable.sum(-1, keepdim=True).clamp_min(1).expand_as(tokens)
    return (ce / (p_mask[noise] * lengths[noise])).sum() / b


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
