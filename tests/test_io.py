"""Atomic table writes."""

from __future__ import annotations

import polars as pl

from features.io import _parquet_ready, write_table


def _shuffled_lists(n: int) -> pl.DataFrame:
    frame = pl.DataFrame({
        "id": [f"r{i:03d}" for i in range(n)],
        "blockers": [None if i % 7 == 0 else ["ann", "model"][: i % 3] for i in range(n)],
    })
    # A gather builds one large list array, the layout that write_table rebuilds in parts.
    return frame.sample(fraction=1.0, shuffle=True, seed=1).sort("id")


def test_list_columns_are_rebuilt_in_parts_with_the_same_values():
    frame = _shuffled_lists(50)
    ready = _parquet_ready(frame, part_rows=8)
    assert ready.n_chunks() == 7
    assert ready.equals(frame)


def test_a_slice_of_a_large_list_array_is_rebuilt_too():
    frame = _shuffled_lists(50)
    piece = frame.slice(10, 8)
    # No larger than one part, yet a view into the whole frame's list array: rebuilt, with the same values.
    ready = _parquet_ready(piece, part_rows=8)
    assert ready is not piece
    assert ready.equals(piece)
    assert _parquet_ready(piece.clear(), part_rows=8).equals(piece.clear())


def test_parquet_round_trip_keeps_null_and_empty_lists(tmp_path):
    frame = _shuffled_lists(600_001)
    assert pl.read_parquet(write_table(frame, tmp_path / "pairs.parquet")).equals(frame)
