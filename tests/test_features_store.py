"""A run folder's features: its own rows, and earlier runs' rows kept in their files by hard link."""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from features.io import write_table
from features.records import CatalogError
from features.store import EARLIER_DIR, FEATURES_FILE, earlier_parts, scan_features, write_features


def rows(start: int, stop: int) -> pl.DataFrame:
    ids = [f"R{i:03d}" for i in range(start, stop)]
    return pl.DataFrame({"left_id": ids, "right_id": [f"{i}x" for i in ids],
                         "title_ratio": np.arange(start, stop, dtype=np.float32) / 100})


def folder_with(tmp_path, name: str, frame: pl.DataFrame):
    folder = tmp_path / name
    folder.mkdir()
    write_table(frame, folder / FEATURES_FILE)
    return folder


def test_mostly_carried_files_are_linked_and_read_back_in_order(tmp_path):
    first = folder_with(tmp_path, "first", rows(0, 10))
    second = tmp_path / "second"
    second.mkdir()
    carried = pl.Series([9, 0, 2, 3, 4, 5, 6])  # 7 of 10 rows, in any order
    write_features(second, [rows(10, 12).lazy()], (first, carried))
    (part,) = earlier_parts(second)
    assert os.stat(part).st_ino == os.stat(first / FEATURES_FILE).st_ino
    expected = pl.concat([rows(10, 12), rows(0, 10)[[0, 2, 3, 4, 5, 6, 9]]])
    assert_frame_equal(scan_features(second).collect(), expected)
    # A third run carries rows of both files: numbers follow scan_features' order of the second run.
    third = tmp_path / "third"
    third.mkdir()
    write_features(third, [rows(20, 21).lazy()], (second, pl.Series([0, 1, 2, 3, 4, 5, 6])))
    assert_frame_equal(scan_features(third).collect(), pl.concat([rows(20, 21), expected[:7]]))
    assert len(earlier_parts(third)) == 2
    # Linked files outlive the run folders that wrote them.
    for folder in (first, second):
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    assert_frame_equal(scan_features(third).collect(), pl.concat([rows(20, 21), expected[:7]]))


def test_files_mostly_gone_are_copied_not_linked(tmp_path):
    first = folder_with(tmp_path, "first", rows(0, 10))
    second = tmp_path / "second"
    second.mkdir()
    write_features(second, [rows(10, 11).lazy()], (first, pl.Series([1, 8, 3])))
    assert not (second / EARLIER_DIR).exists()
    assert_frame_equal(pl.read_parquet(second / FEATURES_FILE), pl.concat([rows(10, 11), rows(0, 10)[[1, 3, 8]]]))
    # Nothing of its own: the linked rows alone, behind an empty file with the same columns.
    third = tmp_path / "third"
    third.mkdir()
    write_features(third, [], (second, pl.Series(range(4))))
    assert pl.read_parquet(third / FEATURES_FILE).is_empty()
    assert_frame_equal(scan_features(third).collect(), pl.read_parquet(second / FEATURES_FILE))


def test_linked_files_without_their_list_of_dropped_rows_are_an_error(tmp_path):
    first = folder_with(tmp_path, "first", rows(0, 10))
    second = tmp_path / "second"
    second.mkdir()
    write_features(second, [], (first, pl.Series(range(8))))
    (second / EARLIER_DIR / "dropped.parquet").unlink()
    with pytest.raises(CatalogError, match="dropped.parquet"):
        scan_features(second)
