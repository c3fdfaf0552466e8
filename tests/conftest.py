"""Session set-up shared by every test module."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

# Prefect binds its console log handler to the stderr of the moment it is set up; doing that now
# keeps it off the short-lived streams typer's CliRunner swaps in (writes to them fail once closed).
from prefect.logging.configuration import setup_logging  # noqa: E402

setup_logging()


def pytest_unconfigure(config):
    """Prefect's temporary API server logs its shutdown at exit, after pytest closed its streams."""
    import logging

    logging.raiseExceptions = False
