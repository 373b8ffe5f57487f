"""The `vireo` console script: the platform's commands (serve, run, worker-health, models, quantize, keys)
and the tooling's (bench, eval, drills).

It lives above both packages so that neither imports the other: the platform knows nothing of the
tools, and the server never loads them.
"""

from __future__ import annotations

import typer

from vireo.platform import cli as platform_cli
from vireo.tools import cli as tools_cli

app = typer.Typer(help="Vireo: LLM task apps on a fast inference layer.", no_args_is_help=True)
app.add_typer(platform_cli.app)
app.add_typer(tools_cli.app)


def main() -> None:
    platform_cli.run_cli(app)


if __name__ == "__main__":
    main()
