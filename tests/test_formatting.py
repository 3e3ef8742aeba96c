"""fidec.formatting: the words numbers and lists are written with."""

from __future__ import annotations

from fidec.formatting import listed


def test_listed_joins_with_commas_and_a_final_and():
    assert listed(["fd"]) == "fd"
    assert listed(["fd", "iso"]) == "fd and iso"
    assert listed(iter(["fql", "iql", "rebrac"])) == "fql, iql and rebrac"
