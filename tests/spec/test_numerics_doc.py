"""docs/numerics.md states the same constants as spec/numerics.py (a doc that drifts fails here)."""
from __future__ import annotations

import re
from pathlib import Path

from spec import numerics as N

DOC = (Path(__file__).resolve().parents[2] / "docs" / "numerics.md").read_text()


def test_doc_version_and_formats_match_spec():
    assert re.search(rf"numerics version {N.NUMERICS_VERSION}\)", DOC)
    assert f"value * 2^{N.FX_FRAC} (FX_FRAC = {N.FX_FRAC})" in DOC
    assert f"{N.FX_BITS}-bit signed" in DOC
    assert f"value * 2^{N.GATE_FRAC}" in DOC
    assert f"{N.SF_BITS}-bit unsigned mantissa" in DOC
    assert f"int{N.GAMMA_BITS} mantissa" in DOC
    assert f"k = 0..{N.SIG_ENTRIES}" in DOC
    assert f"a = min(|z|, {N.SIG_RANGE} * 2^{N.FX_FRAC}); i = a >> {N.FX_FRAC - N.SIG_STEP_LOG2}" in DOC
    assert f"k = max(0, bitlen(max|t|) - {N.SUMSQ_IN_BITS})" in DOC
    assert f"[-2^{N.FX_BITS - 1}, 2^{N.FX_BITS - 1} - 1]" in DOC
