"""Argument parser of ``vggt-mapper batch`` (no heavy imports: ``--help`` must stay fast)."""

from __future__ import annotations

import argparse

from vggt_mapper.cli import map_parser
from vggt_mapper.cli.arg_types import positive_int

__all__ = ['add_parser', 'non_negative_float', 'non_negative_int']

_DESCRIPTION = """\
Map many recordings, each like `vggt-mapper map` into OUTROOT/<name>/, on Ray workers: a new
local Ray instance using this machine's cores and GPUs, or an existing cluster
(--ray-address). One mapping job per recording (a recording is a chain of windows: it is
never split); each worker loads its model once and asks Ray for a GPU when the model would
use one. Every `map` option applies to every recording.

INPUTS are recordings (image folders, videos, rosbag2 folders or .mcap/.db3 files), folders
of recordings, quoted globs ('bags/*.mcap'), or manifests (*.txt): one recording per line,
`PATH [map options for it]`, `#` comments, paths relative to the manifest.

Safe to re-run: a recording's folder appears in one rename once all its outputs and its done
marker (batch_done.json, written last) are there; finished recordings are skipped
(--overwrite maps them again); a failed one is retried (--retries) unless its input or
options are at fault, then reported, and never stops the others. At the end:
OUTROOT/batch_summary.json and a table; logs of each recording in OUTROOT/.batch/logs/.
Exit status 0 when every recording is mapped, 1 when some failed.
"""

_EPILOG = """\
examples:
  vggt-mapper batch bags/ -o maps --device cuda                # every recording in bags/
  vggt-mapper batch 'runs/*/frames' -o maps --model tiny --workers 2
  vggt-mapper batch fleet.txt -o /shared/maps --ray-address auto   # on a Ray cluster
"""


def non_negative_float(text: str) -> float:
    """Parse a number >= 0 (argparse type)."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def non_negative_int(text: str) -> int:
    """Parse an integer >= 0 (argparse type)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """
    Register the ``batch`` subcommand: INPUTS, OUTROOT, every ``map`` option, Ray options.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        'batch', help='map many recordings on Ray workers (this machine or a cluster)',
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', nargs='+', metavar='INPUT',
                        help='recording, folder of recordings, quoted glob or manifest (*.txt)')
    parser.add_argument('-o', '--outroot', required=True, metavar='OUTROOT',
                        help='output root: OUTROOT/<name>/ per recording (created if missing)')
    map_parser.add_options(parser)
    cluster = parser.add_argument_group('cluster')
    cluster.add_argument('--ray-address', metavar='ADDRESS',
                         help="Ray cluster: 'auto' (the cluster this node belongs to), "
                              "'host:6379', 'ray://host:10001' (Ray Client) or 'local' (a new "
                              'instance on this machine); default: $RAY_ADDRESS, else a '
                              'cluster started here with `ray start`, else a new local '
                              'instance')
    cluster.add_argument('--workers', type=positive_int, metavar='N',
                         help='mapping workers (default: one per GPU when the model runs on '
                              'GPUs, else one per --cpus-per-worker CPUs of the cluster)')
    cluster.add_argument('--cpus-per-worker', type=non_negative_float, default=1.0,
                         metavar='N', help='CPUs each worker reserves (default 1)')
    cluster.add_argument('--gpus-per-worker', type=non_negative_float, metavar='N',
                         help='GPUs each worker reserves (default 1 when the local model '
                              'would use a GPU and the cluster has one, else 0; 0.5 puts two '
                              'workers on a GPU)')
    cluster.add_argument('--retries', type=non_negative_int, default=2, metavar='N',
                         help='attempts after a failed one, for failures a retry can fix '
                              '(default 2)')
