"""mro: Multi-Reward Optimization for masked diffusion language models.

The method as implemented is described in ``docs/method.md``. Data flows one way:
tasks -> sampler -> rewards -> search/train -> eval.
"""

from mro.errors import MroError

__version__ = "0.1.0"
__all__ = ["MroError", "__version__"]
