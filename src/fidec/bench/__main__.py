"""``python -m fidec.bench [--quick | --tiny]``: the same command as ``fidec bench``."""

import typer

from fidec.bench.commands import bench_command


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    app.command()(bench_command)
    app()


if __name__ == "__main__":
    main()
