import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fadejax.core.spaces import Axis, ConceptSpace, MicroSpace, SpaceError


@pytest.fixture
def space():
    return ConceptSpace([Axis("a", (1.0, 2.0, 3.0)), Axis("b", (-1.0, 0.0)), Axis("c", (0.1, 0.2, 0.3, 0.4))])


def test_every_action_round_trips_through_cells_and_values(space):
    actions = jnp.arange(space.num_actions)
    cells = space.cell_of(actions)
    assert cells.shape == (24, 3)
    assert len({tuple(c) for c in np.asarray(cells).tolist()}) == 24  # a bijection
    np.testing.assert_array_equal(space.action_of(cells), actions)
    np.testing.assert_array_equal(space.encode(space.decode(actions)), actions)


def test_numbering_is_row_major_with_last_axis_fastest(space):
    np.testing.assert_array_equal(space.cell_of(jnp.array([0, 1, 4, 8])), [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    assert space.describe(23) == {"a": 3.0, "b": 0.0, "c": 0.4}


def test_the_host_conversions_agree_with_the_device_ones(space):
    for action in range(space.num_actions):
        cell = np.asarray(space.cell_of(jnp.int32(action)))
        assert np.array_equal(space.host_cell_of(action), cell) and space.host_action_of(cell) == action


def test_conversions_jit_and_keep_batch_dimensions(space):
    actions = jnp.arange(24).reshape(4, 6)
    values = jax.jit(space.decode)(actions)
    assert values.shape == (4, 6, 3)
    np.testing.assert_array_equal(jax.jit(space.encode)(values), actions)


def test_values_snap_to_the_nearest_axis_value(space):
    np.testing.assert_array_equal(space.cell_of_values(jnp.array([2.2, -0.9, 0.36])), [1, 0, 3])


def test_micro_moves_one_axis_one_notch_and_stays_in_bounds(space):
    micro = MicroSpace(space, start=(0, 1, 3))
    assert micro.num_actions == 6
    cells = micro.start_cells(6)
    moved = np.asarray(micro.move(cells, jnp.arange(6)))
    np.testing.assert_array_equal(moved, [[0, 1, 3], [1, 1, 3], [0, 0, 3], [0, 1, 3], [0, 1, 2], [0, 1, 3]])
    assert micro.describe(3) == "b +1"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ConceptSpace([]), "at least one axis"),
        (lambda: Axis("x", (1.0,)), "at least 2"),
        (lambda: Axis("x", (1.0, 1.0)), "repeats a value"),
        (lambda: ConceptSpace([Axis("x", (1.0, 2.0)), Axis("x", (3.0, 4.0))]), "repeated: ['x']"),
        (lambda: MicroSpace(ConceptSpace([Axis("x", (1.0, 2.0))]), start=(2,)), "outside 0..1"),
        (lambda: MicroSpace(ConceptSpace([Axis("x", (1.0, 2.0))]), start=(0, 0)), "has 2 entries"),
        (lambda: ConceptSpace([Axis(f"x{i}", tuple(range(100))) for i in range(5)]), "int32"),
    ],
)
def test_bad_spaces_are_rejected_with_a_clear_message(build, message):
    with pytest.raises(SpaceError, match=None) as info:
        build()
    assert message in str(info.value)
