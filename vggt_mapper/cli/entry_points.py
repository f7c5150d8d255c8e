"""
Console entry point ``vggt-mapper``: the parser is built from light modules only.

Subcommand modules import torch, the engine and the web stack inside their ``run``, so
``vggt-mapper --help`` stays fast. Known errors print one line and exit 1; anything else keeps
its traceback (a bug to report).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import importlib
import importlib.util
import logging
import sys

__all__ = ['build_parser', 'known_exceptions', 'main']

# Domain error base classes, resolved when an error happens (module, class name); a module that
# is not there (yet) is skipped.
_KNOWN_EXCEPTIONS = (
    ('vggt_mapper.io.errors', 'IOErrorBase'),
    ('vggt_mapper.engine.errors', 'EngineError'),
    ('vggt_mapper.model.errors', 'ModelError'),
    ('vggt_mapper.predictor.errors', 'PredictorError'),
    ('vggt_mapper.predictor.remote', 'RemotePredictorError'),
    ('vggt_mapper.cli.map', 'NothingMappedError'),
    ('vggt_mapper.web.errors', 'WebError'),
    ('vggt_mapper.cluster.errors', 'ClusterError'),
)


def known_exceptions() -> tuple[type[BaseException], ...]:
    """
    Collect the exception classes reported as one line instead of a traceback.

    Only modules already imported are looked at: an error cannot come from a module that was
    never imported, and importing one here (the model package imports torch) would make a
    mistyped argument cost seconds.

    :return: the classes that exist in this process.
    """
    classes: list[type[BaseException]] = []
    for module_name, class_name in _KNOWN_EXCEPTIONS:
        module = sys.modules.get(module_name)
        found = getattr(module, class_name, None) if module is not None else None
        if isinstance(found, type) and issubclass(found, BaseException):
            classes.append(found)
    return tuple(classes)


def _has_module(name: str) -> bool:
    """Tell whether ``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    """
    Build the ``vggt-mapper`` parser with its subcommands.

    :return: the parser; each subcommand sets ``args.run``.
    """
    from vggt_mapper import __version__
    from vggt_mapper.cli import batch_parser, map_parser

    parser = argparse.ArgumentParser(
        prog='vggt-mapper',
        description='Dense 3D mapping from a single moving camera with VGGT.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    map_parser.add_parser(subparsers)
    subparsers.choices['map'].set_defaults(run=_run_map)
    batch_parser.add_parser(subparsers)
    subparsers.choices['batch'].set_defaults(run=_run_batch)
    if _has_module('vggt_mapper.cli.serve'):
        serve = importlib.import_module('vggt_mapper.cli.serve')
        before = set(subparsers.choices)
        serve.add_parser(subparsers)
        for name in set(subparsers.choices) - before:
            subparsers.choices[name].set_defaults(run=serve.run)
    return parser


def _run_map(args: argparse.Namespace) -> int:
    """Import the map command only when it runs."""
    from vggt_mapper.cli import map as map_command

    return map_command.run(args)


def _run_batch(args: argparse.Namespace) -> int:
    """Import the batch command (and, when it runs, Ray) only when it runs."""
    from vggt_mapper.cli import batch as batch_command

    return batch_command.run(args)


def _configure_logging(verbosity: int) -> None:
    """Warnings by default, info with -v, debug with -vv; on stderr."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 \
        else logging.DEBUG
    logging.basicConfig(level=level, format='%(levelname)s %(name)s: %(message)s',
                        stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run ``vggt-mapper`` with ``argv`` (default ``sys.argv[1:]``).

    :param argv: command-line arguments without the program name.
    :return: the exit status (also used by the console script).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(getattr(args, 'verbose', 0))
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print('vggt-mapper: interrupted', file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, known_exceptions()):
            message = str(err).strip() or type(err).__name__
            print(f'vggt-mapper {args.command}: error: {message}', file=sys.stderr)
            return 1
        raise


if __name__ == '__main__':
    sys.exit(main())
