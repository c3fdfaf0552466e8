"""Imports each command module so that its commands register on the app."""
from flows.cli import train  # noqa: F401
from flows.cli import block  # noqa: F401
from flows.cli import review  # noqa: F401
from flows.cli import registry  # noqa: F401
from flows.cli import generate  # noqa: F401
from flows.cli import run  # noqa: F401
from flows.cli import scale  # noqa: F401
