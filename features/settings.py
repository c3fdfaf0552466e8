"""Base class for typed settings that round-trip to JSON."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict

from features.io import write_text


class Settings(BaseModel):
    """Typed, validated settings; unknown keys are errors so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    def to_json(self) -> str:
        """Serialise to indented JSON."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Parse and validate JSON text."""
        return cls.model_validate_json(text)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the settings atomically as JSON."""
        return write_text(self.to_json() + "\n", path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """Read settings from a JSON file."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
