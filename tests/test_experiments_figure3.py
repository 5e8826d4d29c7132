"""Tests of fashion_lib.experiments.figure3: bad garment counts are named before any detector trains."""

from __future__ import annotations

import pytest
from attribute_toys import tiny

from fashion_lib.experiments.figure3 import figure3


@pytest.mark.parametrize(("n_clear", "n_occluded"), [(-1, 2), (2, -1), (0, 0)])
def test_bad_garment_counts_are_named(n_clear, n_occluded):
    with pytest.raises(ValueError, match=f"n_clear and n_occluded must be >= 0 with a positive sum, got {n_clear}, "
                                         f"{n_occluded}"):
        figure3(tiny(), n_clear, n_occluded)
