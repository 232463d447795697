"""Model backends behind one protocol (:class:`mro.models.base.DiffusionLM`)."""

from mro.models.base import DiffusionLM
from mro.models.load import builtin_models, load_model

__all__ = ["DiffusionLM", "builtin_models", "load_model"]
