"""Command-line door onto the pipeline: one module per command group, registered on one app."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# No network at run time: Prefect's telemetry would only log failures.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from features.records import CatalogError  # noqa: E402
from flows.cli import commands  # noqa: E402,F401  (registers every command on the app)
from flows.cli.app import app  # noqa: E402


def main() -> None:
    """Run the CLI, turning input errors into one line on stderr and exit status 2."""
    try:
        app()
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
