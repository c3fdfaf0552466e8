"""Prefect flows, the CLI and the plain orchestration functions behind them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("catalog-match")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
