"""The matcher's trees compiled to machine code (lleaves), kept in a cache so that each machine compiles a
model once.

Compiled trees give LightGBM's own probabilities (every tree, to ~1e-14) several times faster: on
600,000 pairs of the 100,000-listing bench, 1.9 s against 14 s for LightGBM scoring every tree and 7 s
for LightGBM stopping early. Compiling that 1,200-tree model took 22 s, as much as LightGBM spends on
~1M pairs, so it is done once per machine, by the first scoring call of ``COMPILE_MIN_ROWS`` pairs or
more (a catalog of tens of thousands of listings); smaller calls score with LightGBM unless the
compiled trees are already there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import logging
import os
import tempfile
import threading
from pathlib import Path

import lleaves
from llvmlite import binding as llvm

from features.io import cache_root

log = logging.getLogger(__name__)
# Rows of the scoring call that compiles a model (compiled trees, once there, score calls of any size).
COMPILE_MIN_ROWS = 200_000
_LOCK = threading.Lock()
_LOADED: dict[Path, lleaves.Model] = {}


def compiled_dir(root: Path | None = None) -> Path:
    """Where compiled models are kept: the ``compiled`` folder of ``root``, by default the cache root."""
    return (root or cache_root()) / "compiled"


@functools.cache
def _machine() -> bytes:
    """This CPU and these library versions: object code is specific to the CPU and compiler that built it."""
    parts = (importlib.metadata.version("lleaves"), importlib.metadata.version("llvmlite"),
             llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())
    return "\0".join(parts).encode()


@functools.lru_cache(maxsize=8)
def _name(model_text: str) -> str:
    # Every scoring call asks; hashing a 2 MB model text each time took 3.6 ms.
    return hashlib.sha256(model_text.encode() + b"\0" + _machine()).hexdigest()[:32] + ".o"


def compiled_path(model_text: str, folder: Path | None = None) -> Path:
    """The object file of the trees in ``model_text`` compiled for this CPU by these library versions."""
    return (folder or compiled_dir()) / _name(model_text)


def compiled_trees(model_text: str, rows: int, folder: Path | None = None) -> lleaves.Model | None:
    """The compiled trees of ``model_text`` (LightGBM's model text): loaded when compiled before, compiled
    now when ``rows`` reach ``COMPILE_MIN_ROWS``, else None (score with LightGBM)."""
    path = compiled_path(model_text, folder)
    with _LOCK:  # scoring tasks share a model: the first compiles, the others wait for it
        if path not in _LOADED:
            if not path.is_file() and rows < COMPILE_MIN_ROWS:
                return None
            _LOADED[path] = _load(model_text, path)
        return _LOADED[path]


def compile_trees(model_text: str, folder: Path | None = None) -> Path:
    """Compile ``model_text`` now unless it is compiled already (as a job of any size will then use it)."""
    compiled_trees(model_text, COMPILE_MIN_ROWS, folder)
    return compiled_path(model_text, folder)


def _load(model_text: str, path: Path) -> lleaves.Model:
    """The trees of ``model_text`` from the object file ``path``, compiled into it first if it is missing."""
    # lleaves reads the model from a file: the text the caller scores with, not whatever the model
    # folder holds by now.
    with tempfile.TemporaryDirectory(prefix="catalog-match-trees-") as tmp:
        text_file = Path(tmp) / "model.txt"
        text_file.write_text(model_text, encoding="utf-8")
        model = lleaves.Model(model_file=str(text_file))
        if path.is_file():
            model.compile(cache=str(path))
            return model
        log.info("compiling the matcher's trees once for this machine (%s)", path)
        # Written under another name and renamed: a run starting meanwhile never loads half a file.
        part = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            model.compile(cache=str(part))
            os.replace(part, path)
        except OSError as exc:
            # A cache that cannot be written (read-only, full, a file in the way) costs the next run a
            # compile, not this one its scoring.
            log.warning("cannot keep compiled trees in %s (%s): compiled for this process only", path.parent, exc)
            model = lleaves.Model(model_file=str(text_file))
            model.compile()
        finally:
            with contextlib.suppress(OSError):  # renamed, never written, or no folder to hold it
                part.unlink()
        return model
