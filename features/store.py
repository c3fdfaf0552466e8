"""A run folder's pair features: the rows the run computed in ``features.parquet``, then the rows it took
over from earlier runs, left in the files those runs wrote.

An incremental run carries most of its feature rows over unchanged. Rewriting them cost a million-listing
run ~12 s of its ~3 minutes; instead the files holding them are hard-linked into ``features-earlier/``
(copied where the file system cannot link), with ``dropped.parquet`` naming which of their rows do not
belong to the run: fewer than those that do, so the list read back is the short one. A file most of whose
rows are gone has its carried rows copied instead, so linked files never hold more dead rows than live ones.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from features.io import write_table
from features.records import CatalogError

FEATURES_FILE = "features.parquet"
EARLIER_DIR = "features-earlier"
EARLIER_DROPPED = "dropped.parquet"  # part (index of a file in EARLIER_DIR), row (in that file); sorted
# A file is linked when at least this share of its rows is carried over, else those rows are copied.
LINK_MIN_SHARE = 0.5
_PART, _ROW = "part", "row"


def earlier_parts(folder: Path) -> list[Path]:
    """The earlier runs' feature files linked into a run folder, in part order."""
    return sorted((folder / EARLIER_DIR).glob("[0-9]*.parquet"))


def scan_features(folder: Path) -> pl.LazyFrame:
    """Every feature row of a run folder, lazily: its own rows, then those carried over (by part and row)."""
    return pl.concat([pl.scan_parquet(folder / FEATURES_FILE),
                      *(_scan_rows(path, dropped, keep=False) for path, dropped in _dropped(folder))])


def _scan_rows(path: Path, rows: pl.Series, keep: bool) -> pl.LazyFrame:
    """The rows of a Parquet file numbered ``rows`` (``keep``), or all but those, lazily, in file order."""
    numbered = pl.col("_at").is_in(rows.implode())
    return pl.scan_parquet(path, row_index_name="_at").filter(numbered if keep else ~numbered).drop("_at")


def _dropped(folder: Path) -> list[tuple[Path, pl.Series]]:
    """Each linked file of a run folder with the numbers of its rows that are not the run's."""
    dropped_file = folder / EARLIER_DIR / EARLIER_DROPPED
    if not dropped_file.is_file():
        if earlier_parts(folder):
            raise CatalogError(dropped_file, "is missing, so the linked feature files cannot be read")
        return []
    dropped = pl.read_parquet(dropped_file)
    return [(path, dropped.filter(pl.col(_PART) == part)[_ROW]) for part, path in enumerate(earlier_parts(folder))]


def _row_count(path: Path) -> int:
    return pl.scan_parquet(path).select(pl.len()).collect().item()


def _other_rows(total: int, rows: np.ndarray) -> np.ndarray:
    """The row numbers below ``total`` that are not in ``rows`` (a mask: np.setdiff1d took 27 s on 16M)."""
    others = np.ones(total, dtype=bool)
    others[rows] = False
    return np.flatnonzero(others).astype(np.uint32)


def feature_sources(folder: Path) -> tuple[list[tuple[Path, int]], pl.DataFrame]:
    """Where each feature row of a run folder (in ``scan_features`` order) is stored: the files with their
    row counts, and per row the index of its file (0: ``features.parquet``) and its row there."""
    own = folder / FEATURES_FILE
    files = [(own, _row_count(own))]
    rows = [np.arange(files[0][1], dtype=np.uint32)]
    for path, dropped in _dropped(folder):
        files.append((path, _row_count(path)))
        rows.append(_other_rows(files[-1][1], dropped.to_numpy()))
    return files, pl.DataFrame({"file": np.repeat(np.arange(len(files), dtype=np.uint32), [len(r) for r in rows]),
                                _ROW: np.concatenate(rows)})


def _link(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target``; copy it where the file system cannot link (another device)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_features(folder: Path, own: list[pl.LazyFrame], carried: tuple[Path, pl.Series] | None = None) -> None:
    """Write a run folder's features: the ``own`` rows, then those ``carried`` over (a previous run folder and
    the numbers of its rows in ``scan_features`` order), linked in their files or copied (``LINK_MIN_SHARE``)."""
    copies, links = [], []
    if carried is not None and carried[1].len():
        files, sources = feature_sources(carried[0])
        chosen = sources[np.sort(carried[1].to_numpy())]
        for (file,), rows in chosen.group_by("file", maintain_order=True):
            path, total = files[file]
            if rows.height >= LINK_MIN_SHARE * total:
                links.append((path, _other_rows(total, rows[_ROW].to_numpy())))
            else:
                copies.append(_scan_rows(path, rows[_ROW], keep=True))
    frames = [*own, *copies]
    if not frames:  # nothing of this run's own: an empty file with the columns of the linked ones
        frames = [pl.scan_parquet(links[0][0]).clear()] if links else []
    pl.concat(frames).sink_parquet(folder / FEATURES_FILE)
    if links:
        (folder / EARLIER_DIR).mkdir()
        for part, (path, _) in enumerate(links):
            _link(path, folder / EARLIER_DIR / f"{part:05d}.parquet")
        write_table(pl.concat([pl.DataFrame({_PART: np.full(len(dropped), part, np.uint32), _ROW: dropped})
                               for part, (_, dropped) in enumerate(links)]), folder / EARLIER_DIR / EARLIER_DROPPED)
