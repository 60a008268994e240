import pytest

from deepen.expand import plan as plans


def test_top_half_gives_one_and_a_half_depth():
    points = plans.insertion_points("top_half", 32)
    assert points == list(range(15, 31))
    p = plans.interleave(32, points)
    assert len(p) == 48
    assert p[16] == {"from": "new", "id": 0, "between": [15, 16]}


def test_interval_inserts_after_every_kth_layer():
    assert plans.insertion_points({"interval": 4}, 32) == [3, 7, 11, 15, 19, 23, 27, 31]
    p = plans.interleave(8, plans.insertion_points({"interval": 2}, 8))
    assert [e["from"] for e in p] == ["base", "base", "new"] * 4
    assert p[-1]["between"] == [7, None]


def test_interval_offset_keeps_new_layers_below_the_top():
    assert plans.insertion_points({"interval": 2, "offset": 0}, 8) == [0, 2, 4, 6]
    with pytest.raises(plans.PlanError, match="offset"):
        plans.insertion_points({"interval": 2, "offset": 2}, 8)


def test_bottom_and_explicit():
    assert plans.insertion_points("bottom", 8) == [0, 1, 2, 3]
    assert plans.insertion_points({"explicit": [5, 2]}, 8) == [2, 5]


@pytest.mark.parametrize("placement, message", [
    ("middle", "unknown placement"),
    ({"explicit": [8]}, "outside"),
    ({"explicit": [1, 1]}, "twice"),
    ({"interval": 0}, "positive"),
])
def test_bad_placements(placement, message):
    with pytest.raises(plans.PlanError, match=message):
        plans.insertion_points(placement, 8)


def test_validate_rejects_bad_entries():
    with pytest.raises(plans.PlanError, match="outside"):
        plans.validate([{"from": "base", "layer": 9}], 8)
    with pytest.raises(plans.PlanError, match="in order"):
        plans.validate([{"from": "new", "id": 1, "between": [0, 1]}], 8)
