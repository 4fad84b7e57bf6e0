"""Golden model: integer-exact implementation of spec/numerics.py (the definition of correct)."""
from .model import GoldenModel, GoldenWeights, logits_to_float

__all__ = ["GoldenModel", "GoldenWeights", "logits_to_float"]
