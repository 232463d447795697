"""Rewards (docs/method.md section 3) and SGRO grouping (docs/method.md section 4).

One import line per module; add a module's public names in both places below.
"""

from mro.rewards.completion_fns import (
    TASK_COLUMNS,
    completion_text,
    perplexity_reward_fn,
    quality_reward_fn,
    token_verification_reward_fn,
)
from mro.rewards.quality import majority_vote, quality_reward
from mro.rewards.sgro import (
    expand_to_steps,
    group_bounds,
    group_intra,
    group_returns,
    proposal_probs,
    sample_groups,
)
from mro.rewards.terms import RewardTerm, RewardWeights, parse_rewards, register_reward, reward_terms

__all__ = [
    # completion_fns
    "TASK_COLUMNS",
    "completion_text",
    "quality_reward_fn",
    "perplexity_reward_fn",
    "token_verification_reward_fn",
    # quality
    "majority_vote",
    "quality_reward",
    # sgro
    "expand_to_steps",
    "group_bounds",
    "group_intra",
    "group_returns",
    "proposal_probs",
    "sample_groups",
    # terms
    "RewardTerm",
    "RewardWeights",
    "parse_rewards",
    "register_reward",
    "reward_terms",
]
