"""The one id scheme: native connection ids and Pusher socket ids (protocol.ids)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.ids import MAX_WORKERS, IdFactory, owner_of
from protocol.pusher import is_valid_socket_id


def test_ids_are_pusher_socket_ids_naming_their_owner() -> None:
    ids = IdFactory(3, 7)
    made = [ids.new() for _ in range(2000)]
    assert len(set(made)) == 2000  # 63 random bits each: no repeats
    for conn_id in made[:50]:
        assert is_valid_socket_id(conn_id)
        assert owner_of(conn_id) == (3, 7)
    assert made[0].startswith(f"{3 * MAX_WORKERS + 7}.")


def test_ids_made_ahead_take_a_new_node_id_at_once() -> None:
    # Ids are made 512 at a time: those made before assign() carry the old owner and
    # must never be handed out after it.
    ids = IdFactory(3, 7)
    ids.new()
    ids.assign(42)
    assert all(owner_of(ids.new()) == (42, 7) for _ in range(600))


def test_bad_factory_arguments() -> None:
    with pytest.raises(ValueError):
        IdFactory(-1)
    with pytest.raises(ValueError):
        IdFactory(10000)
    with pytest.raises(ValueError):
        IdFactory(1, MAX_WORKERS)


@pytest.mark.parametrize("bad", ["x.1", "1", "1.x", "٣.1", "1.٣", "", ".", "1."])
def test_owner_of_refuses_what_is_not_an_id(bad: str) -> None:
    with pytest.raises(ValueError):
        owner_of(bad)
    assert not is_valid_socket_id(bad)


@given(st.integers(min_value=0, max_value=9999), st.integers(min_value=0, max_value=99))
def test_owner_round_trip(node: int, worker: int) -> None:
    assert owner_of(IdFactory(node, worker).new()) == (node, worker)
