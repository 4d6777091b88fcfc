"""While a replay runs, the cycle collector's young generation runs less often; afterwards,
whatever happened, the process's own thresholds are back."""

from __future__ import annotations

import gc

import pytest

from shared.projection.replay_pages import YOUNG, fewer_collections


def test_replay_collects_young_objects_less_often_and_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        during = gc.get_threshold()
    assert during == (max(YOUNG, before[0]), *before[1:])
    assert gc.get_threshold() == before


def test_thresholds_come_back_when_the_replay_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("page failed")
    assert gc.get_threshold() == before
