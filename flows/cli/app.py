"""The typer application every command module registers on."""

import typer

app = typer.Typer(
    name="catalog-match",
    help="Find duplicate listings and variant families in product catalogs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
