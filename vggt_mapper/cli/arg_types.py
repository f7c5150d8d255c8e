"""Argparse value types shared by the subcommands."""

from __future__ import annotations

import argparse

__all__ = ['positive_float', 'positive_int']


def positive_int(text: str) -> int:
    """Parse an integer >= 1 (argparse type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def positive_float(text: str) -> float:
    """Parse a number > 0 (argparse type)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {value}')
    return value
