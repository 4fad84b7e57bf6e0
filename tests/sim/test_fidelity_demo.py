"""The acceptance check of the numerics on the trained demo model, in the default run:
golden integer model vs float PyTorch model, teacher-forced over the first 2,048 tokens of the
held-out text (sw/demo/heldout.txt, opening of Macbeth, never trained on).

Measured when written (python -m sim.benches.fidelity --model demo): top-1 99.71 %, perplexity
27.2981 (float) vs 27.2991 (golden), 0.003 % apart; over 8,192 tokens 99.35 % and 0.015 %.
"""
from __future__ import annotations

import pytest

from sim.benches.fidelity import measure

pytestmark = pytest.mark.torch


def test_golden_matches_float_demo_model_on_heldout_text(tmp_path):
    res = measure("demo", 2048, workdir=tmp_path, progress=False)
    assert res["positions"] == 2048
    assert res["top1_agreement"] >= 0.99, res
    assert res["ppl_rel_diff"] <= 0.01, res
