"""`python -m flows` is the catalog-match CLI."""

from flows.cli import main

main()
