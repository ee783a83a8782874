"""The ``sparseir`` command line: a thin layer over the Python API.

Commands are imported only when invoked, so ``sparseir search`` never pays for torch or
matplotlib. Input errors print as one line and exit with status 1.
"""

from __future__ import annotations

import importlib
import logging

import click

from .. import __version__
from ..errors import SparseirError

COMMANDS = {
    "index": "sparseir.cli.index:index",
    "search": "sparseir.cli.search:search",
    "info": "sparseir.cli.info:info",
    "tune": "sparseir.cli.tune:tune",
    "encode": "sparseir.cli.encode:encode",
    "encode-ray": "sparseir.cli.ray_commands:encode_ray",
    "eval": "sparseir.cli.eval:eval_command",
    "bench": "sparseir.cli.bench:bench",
    "demo": "sparseir.cli.demo:demo",
    "add": "sparseir.cli.segments:add",
    "delete": "sparseir.cli.segments:delete",
    "compact": "sparseir.cli.segments:compact",
    "segment": "sparseir.cli.segments:segment",
    "binarize": "sparseir.cli.binarize:binarize",
    "export-ciff": "sparseir.cli.export_ciff:export_ciff",
    "fuse": "sparseir.cli.fuse:fuse",
    "serve": "sparseir.cli.serve:serve",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SparseirError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            # Disk full, permission denied on output: still one line, never a traceback.
            raise click.ClickException(f"{e.filename or ''}: {e.strerror or e}") from None


def print_version(ctx, param, value):
    if value and not ctx.resilient_parsing:
        from ..extras import describe_installation

        click.echo(describe_installation(__version__))
        ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=print_version,
              help="Show the version, with the optional parts installed, and exit.")
def cli():
    """Learned sparse retrieval: encode, index, search, evaluate."""
    show_library_notes()


class EchoHandler(logging.Handler):
    """Log records as plain lines on stderr, through click (which tests capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def show_library_notes() -> None:
    """What the library logs at INFO and above (a build's notes, an encoder's warnings) reaches
    the user on stderr: a library never configures logging, its command line does."""
    logger = logging.getLogger("sparseir")
    if not any(isinstance(handler, EchoHandler) for handler in logger.handlers):
        logger.addHandler(EchoHandler())
        logger.setLevel(logging.INFO)


def main():
    cli()
