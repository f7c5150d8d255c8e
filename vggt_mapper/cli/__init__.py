"""
The offline door: ``vggt-mapper map`` (and ``vggt-mapper serve`` from the web door).

Importing this package imports neither torch nor the engine; subcommands import what they
need when they run.
"""

from __future__ import annotations

from vggt_mapper.cli.entry_points import main

__all__ = ['main']
