"""
The recordings of a batch: inputs expanded, named, and their output folders' state.

No Ray here: what to map and where it goes is decided (and checked) before a cluster is asked
for anything. An INPUT of ``vggt-mapper batch`` is

* a glob (``'bags/*.mcap'``, quoted so that the program expands it, in natural order),
* a recording: an image folder, a rosbag2 (folder or ``.mcap``/``.db3`` file) or a video,
* a folder of recordings: its entries that are recordings (sub-folders of images, bags,
  videos), when the folder is not a recording itself,
* a manifest (``*.txt``): one recording per line, ``PATH [map options]``, shell quoting,
  ``#`` comments, paths relative to the manifest's folder. The options apply to that
  recording only, after the command line's (the later value wins).

Each recording is mapped into ``OUTROOT/<name>/``; names come from the input's file or folder
name, with as many parent folders as needed to tell two inputs apart
(``robot1_2024-06-01``, ``robot2_2024-06-01``). A folder is finished when it holds the done
marker (``batch_done.json``), which a worker writes into its staging folder after every
output, just before the one rename that publishes the folder: a folder without it was not
made by a finished batch run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import glob
import json
import logging
import os
from pathlib import Path
import re
import shlex
import shutil
from typing import Any
import uuid

from vggt_mapper.cluster.errors import BatchInputError, RecordingFailed
from vggt_mapper.io.atomic import atomic_write_bytes, fsync_directory
from vggt_mapper.io.errors import InputError
from vggt_mapper.io.readers import detect_input_kind, InputKind, list_images, natural_sort_key

__all__ = [
    'DONE_FORMAT',
    'DONE_MARKER',
    'MANIFEST_SUFFIXES',
    'Recording',
    'STATE_DIR',
    'VIDEO_SUFFIXES',
    'expand_inputs',
    'publish',
    'read_done_marker',
    'unique_names',
    'write_done_marker',
]

_LOG = logging.getLogger(__name__)

DONE_MARKER = 'batch_done.json'
DONE_FORMAT = 'vggt_mapper.batch_done/1'
#: Hidden folder in OUTROOT for the batch's own state: staging folders, logs, the lock.
STATE_DIR = '.batch'
MANIFEST_SUFFIXES = ('.txt',)
VIDEO_SUFFIXES = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg')
_GLOB_CHARS = re.compile(r'[*?[]')


@dataclass(frozen=True)
class Recording:
    """
    One input to map into ``OUTROOT/<name>/``.

    :param name: the output folder's name (unique in the batch).
    :param source: the image folder, video or rosbag2.
    :param options: ``map`` options for this recording only (from a manifest line).
    :param origin: where it was listed (``manifest.txt:3``, a glob, ``command line``).
    """

    name: str
    source: Path
    options: tuple[str, ...] = ()
    origin: str = 'command line'


def _is_recording(path: Path) -> bool:
    """Tell an entry of a folder of recordings: a bag, a folder of images or a video."""
    if path.name.startswith('.'):
        return False
    if path.is_dir():
        return (detect_input_kind(path) is InputKind.ROSBAG2
                or bool(list_images(path)))
    return path.suffix.lower() in (*VIDEO_SUFFIXES, '.mcap', '.db3')


def _recordings_in(folder: Path) -> list[Path]:
    """List a folder's recordings, or the folder itself when it is one."""
    if _is_recording(folder):
        return [folder]
    found = [entry for entry in folder.iterdir() if _is_recording(entry)]
    if not found:
        raise BatchInputError(
            f'{str(folder)!r} holds no recording: no images, no rosbag2, no video '
            f'({", ".join(VIDEO_SUFFIXES)}) and no sub-folder that is one')
    return sorted(found, key=lambda path: natural_sort_key(path.name))


def _expand_one(text: str, base: Path | None, options: tuple[str, ...], origin: str
                ) -> list[tuple[Path, tuple[str, ...], str]]:
    """Expand one INPUT (glob, recording, folder of recordings or manifest)."""
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if _GLOB_CHARS.search(text):
        matches = sorted(glob.glob(str(path)), key=natural_sort_key)
        if not matches:
            raise BatchInputError(f'{text!r} ({origin}) matches nothing')
        return [(Path(match), options, f'{origin}, {text}') for match in matches]
    if not path.exists():
        raise BatchInputError(f'{str(path)!r} ({origin}) does not exist')
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        if base is not None:
            raise BatchInputError(f'{origin}: a manifest cannot list another manifest '
                                  f'({str(path)!r})')
        return _read_manifest(path)
    if path.is_dir():
        return [(found, options, origin) for found in _recordings_in(path)]
    return [(path, options, origin)]


def _read_manifest(manifest: Path) -> list[tuple[Path, tuple[str, ...], str]]:
    """Read a manifest: ``PATH [map options]`` per line."""
    try:
        lines = manifest.read_text(encoding='utf-8').splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise BatchInputError(f'cannot read the manifest {str(manifest)!r}: {err}') from err
    entries: list[tuple[Path, tuple[str, ...], str]] = []
    for number, line in enumerate(lines, start=1):
        origin = f'{manifest.name}:{number}'
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as err:
            raise BatchInputError(f'{origin}: {err} in {line!r}') from err
        if not tokens:
            continue
        if tokens[0].startswith('-'):
            raise BatchInputError(f'{origin}: a line starts with the input path, then its '
                                  f'options; got {line!r}')
        entries += _expand_one(tokens[0], manifest.parent, tuple(tokens[1:]), origin)
    if not entries:
        raise BatchInputError(f'the manifest {str(manifest)!r} lists no recording')
    return entries


def _base_name(path: Path) -> str:
    """Name a recording after itself: a video's or bag file's stem, a folder's name."""
    return path.stem if path.is_file() else path.name


def _clean(name: str) -> str:
    """Keep names portable: letters, digits, ``.``, ``_``, ``-``; never hidden."""
    return re.sub(r'[^A-Za-z0-9._-]+', '_', name).lstrip('.') or 'recording'


def unique_names(paths: Sequence[Path]) -> list[str]:
    """
    Name each path's output folder, adding parent folders until every name is unique.

    :param paths: distinct recordings.
    :return: one name per path, in order (``bag_a``; ``robot1_day1`` and ``robot2_day1`` for
        two ``day1`` folders).
    """
    resolved = [path.resolve() for path in paths]
    depth = [1] * len(paths)

    def name(index: int) -> str:
        parts = [_base_name(resolved[index])]
        parts = [parent.name for parent in resolved[index].parents][:depth[index] - 1][::-1] \
            + parts
        return _clean('_'.join(part for part in parts if part))

    while True:
        names = [name(index) for index in range(len(paths))]
        clashing = {index for index, value in enumerate(names) if names.count(value) > 1}
        deeper = [index for index in clashing
                  if depth[index] <= len(resolved[index].parents)]
        if not deeper:
            break
        for index in deeper:
            depth[index] += 1
    for index in sorted(clashing):
        names[index] = f'{names[index]}-{index}'  # same name at every depth: number them
    return names


def expand_inputs(inputs: Sequence[str]) -> list[Recording]:
    """
    Turn the INPUTS of ``vggt-mapper batch`` into named recordings (see the module docstring).

    The same input listed twice with the same options is mapped once (with a warning); with
    different options it is an error, since both would need the same output folder.

    :param inputs: globs, recordings, folders of recordings and manifests.
    :return: the recordings, in the order given.
    :raises BatchInputError: for a path that does not exist, a glob that matches nothing, a
        folder without recordings or a malformed manifest line.
    """
    entries: list[tuple[Path, tuple[str, ...], str]] = []
    for text in inputs:
        try:
            entries += _expand_one(text, None, (), 'command line')
        except InputError as err:
            raise BatchInputError(str(err)) from err
    kept: dict[Path, tuple[Path, tuple[str, ...], str]] = {}
    for path, options, origin in entries:
        key = path.resolve()
        if key in kept:
            if kept[key][1] != options:
                raise BatchInputError(
                    f'{str(path)!r} is listed twice with different options ({kept[key][2]}: '
                    f'{list(kept[key][1])}; {origin}: {list(options)}); list it once')
            _LOG.warning('%s is listed twice (%s, %s): mapped once', path, kept[key][2], origin)
            continue
        kept[key] = (path, options, origin)
    chosen = list(kept.values())
    names = unique_names([path for path, _, _ in chosen])
    return [Recording(name, path, options, origin)
            for name, (path, options, origin) in zip(names, chosen, strict=True)]


def read_done_marker(folder: Path) -> dict[str, Any] | None:
    """
    Read a finished recording's marker.

    :param folder: ``OUTROOT/<name>``.
    :return: the marker's content, or None when the folder is not a finished batch output.
    """
    try:
        content = json.loads((folder / DONE_MARKER).read_text(encoding='utf-8'))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        _LOG.warning('%s is unreadable (%s): the recording counts as not done',
                     folder / DONE_MARKER, err)
        return None
    if not isinstance(content, dict) or content.get('format') != DONE_FORMAT:
        return None
    return content


def write_done_marker(folder: Path, content: dict[str, Any]) -> Path:
    """
    Write the done marker into a (staging) folder whose outputs are all written.

    :param folder: the folder.
    :param content: what to remember (input, options, result); ``format`` is added.
    :return: the marker's path.
    """
    data = json.dumps({'format': DONE_FORMAT, **content}, indent=1, sort_keys=True)
    return atomic_write_bytes(folder / DONE_MARKER, data.encode('utf-8') + b'\n')


def publish(staging: Path, final: Path, *, overwrite: bool) -> None:
    """
    Move a finished staging folder to its final place in one rename.

    :param staging: the folder with every output and the done marker.
    :param final: ``OUTROOT/<name>``.
    :param overwrite: replace an existing ``final`` (moved aside, then deleted).
    :raises RecordingFailed: when ``final`` exists and ``overwrite`` is False (not retryable).
    """
    trash = None
    if final.exists():
        if not overwrite:
            raise RecordingFailed(
                f'{str(final)!r} already exists and is not a finished batch output; move it '
                'away or pass --overwrite', retryable=False)
        trash = staging.parent / f'.replaced-{final.name}-{uuid.uuid4().hex[:8]}'
        os.replace(final, trash)
    try:
        os.replace(staging, final)
    except OSError as err:
        raise RecordingFailed(f'cannot move the outputs into {str(final)!r}: {err}',
                              retryable=True) from err
    fsync_directory(final.parent)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
