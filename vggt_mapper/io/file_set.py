"""
Save a set of outputs into a folder as one unit: after any crash, the old set or the new one.

Writing ``map.glb``, ``map.ply``, ``trajectory.tum`` and ``cameras.json`` one by one, even each
atomically, leaves a mixed set when the process is killed between two files. ``write_file_set``
uses a redo log instead, so the set in the folder is always one save's:

1. lock the folder (``flock`` on the folder itself: one save at a time; the kernel releases the
   lock of a killed process);
2. recover from an earlier save that was interrupted (see below);
3. write every entry into a fresh hidden staging folder ``.vggt_mapper-save-*`` in the output
   folder (same file system, so moving is a rename), each file fsynced;
4. commit: write the journal ``.vggt_mapper-save.json`` naming the staging folder and its entries
   (atomically: temporary file, fsync, rename, folder fsync). Before this point a crash leaves
   the previous set untouched; after it the new set is the one that counts;
5. move each entry into place (``os.replace``; an entry that is a folder first moves the old
   folder into the staging folder), fsync the folder;
6. delete the journal, then the staging folder.

Recovery (step 2, or ``recover_file_set``): a journal means a committed save whose moves may be
unfinished, so they are finished (moving what is still in the staging folder); staging folders
without a journal are uncommitted saves and are deleted, with the hidden temporary files of
``atomic_write`` left next to the entries by a killed writer.

An entry is any file or folder a writer callable makes at the path it is given, so more outputs
(statistics, a whole map folder of keyframes) can join the set without changing the protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
import errno
import fcntl
import json
import logging
import os
from pathlib import Path
import re
import shutil
import tempfile
import time

from vggt_mapper.io.atomic import atomic_write_bytes, fsync_directory
from vggt_mapper.io.errors import ExportError

__all__ = ['EntryWriter', 'JOURNAL_NAME', 'Recovery', 'STAGING_PREFIX', 'recover_file_set',
           'write_file_set']

_LOG = logging.getLogger(__name__)

STAGING_PREFIX = '.vggt_mapper-save-'
JOURNAL_NAME = '.vggt_mapper-save.json'
_JOURNAL_FORMAT = 'vggt_mapper.save-journal/1'
# Prefix of the folder an entry's previous version (a folder) is moved into before the switch.
_OLD_PREFIX = '.old-'
# How long to wait for another process's save into the same folder before giving up.
_LOCK_WAIT_S = 60.0
_LOCK_POLL_S = 0.05

#: Writes one entry (a file, or a folder and its contents) at the path it is given.
EntryWriter = Callable[[Path], object]


@dataclass(frozen=True)
class Recovery:
    """
    What ``recover_file_set`` found of an earlier, interrupted save.

    :param finished: entries of a committed save that were moved into place now.
    :param removed: leftovers deleted (staging folders of uncommitted saves, temporary files).
    """

    finished: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def _check_names(names: Sequence[str]) -> None:
    """Refuse entry names that are not plain, visible names in the folder."""
    for name in names:
        if not name or name.startswith('.') or '/' in name or os.sep in name:
            raise ExportError(f'entry name {name!r} must be a plain file or folder name without '
                              'a leading dot')


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` (waits a while for another saver)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError as err:
        raise ExportError(f'Cannot open output folder {str(folder)!r}: {err}') from err
    try:
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise ExportError(f'Cannot lock output folder {str(folder)!r}: {err}') \
                        from err
                if time.monotonic() > deadline:
                    raise ExportError(f'Another process has been saving into {str(folder)!r} '
                                      f'for over {_LOCK_WAIT_S:.0f} s; choose another folder')\
                        from err
                time.sleep(_LOCK_POLL_S)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _temp_file_pattern(names: Sequence[str]) -> re.Pattern[str]:
    """Match the hidden temporary files ``atomic_write`` makes for these names."""
    alternatives = '|'.join(re.escape(name) for name in names)
    return re.compile(rf'\.(?:{alternatives})\.[A-Za-z0-9_]+\.tmp')


def _remove(path: Path) -> None:
    """Delete a leftover file or folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _switch(folder: Path, staging: Path, names: Sequence[str]) -> None:
    """Move the staged entries into place (idempotent: redone after a crash), then clean up."""
    for name in names:
        staged = staging / name
        if not staged.exists() and not staged.is_symlink():
            continue  # moved before the crash
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            os.replace(target, staging / f'{_OLD_PREFIX}{name}')
        os.replace(staged, target)
    fsync_directory(folder)
    (folder / JOURNAL_NAME).unlink(missing_ok=True)
    fsync_directory(folder)
    shutil.rmtree(staging)


def _read_journal(journal: Path) -> tuple[Path, list[str]]:
    """Return the staging folder and entry names a journal names."""
    try:
        record = json.loads(journal.read_text(encoding='utf-8'))
        if record.get('format') != _JOURNAL_FORMAT:
            raise ValueError(f'format {record.get("format")!r}')
        staging_name = str(record['staging'])
        names = [str(name) for name in record['entries']]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ExportError(f'{str(journal)!r} is not a readable save journal ({err}); it was not '
                          'written by this program: move it away') from err
    if not staging_name.startswith(STAGING_PREFIX) or '/' in staging_name:
        raise ExportError(f'{str(journal)!r} names {staging_name!r}, not a staging folder; move '
                          'the journal away')
    _check_names(names)
    return journal.parent / staging_name, names


def _recover_locked(folder: Path, names: Sequence[str]) -> Recovery:
    """``recover_file_set`` with the folder lock held."""
    finished: list[str] = []
    removed: list[str] = []
    journal = folder / JOURNAL_NAME
    if journal.exists():
        staging, committed = _read_journal(journal)
        if staging.is_dir():
            finished = [name for name in committed if (staging / name).exists()]
            _switch(folder, staging, committed)
        else:
            journal.unlink()
    temp_files = _temp_file_pattern(names) if names else None
    for entry in sorted(folder.iterdir()):
        stale = entry.name.startswith(STAGING_PREFIX) or (
            temp_files is not None and temp_files.fullmatch(entry.name) is not None)
        if stale:
            _remove(entry)
            removed.append(entry.name)
    if finished:
        _LOG.warning('finished an interrupted save in %s: moved %s into place', folder,
                     ', '.join(finished))
    if removed:
        _LOG.warning('removed the leftovers of an interrupted save in %s: %s', folder,
                     ', '.join(removed))
    return Recovery(tuple(finished), tuple(removed))


def recover_file_set(folder: Path | str, names: Sequence[str] = ()) -> Recovery:
    """
    Finish or clean up a save into ``folder`` that was interrupted (killed, power cut).

    Safe to call at any time: it takes the folder's save lock. ``write_file_set`` calls it
    first; a program may call it early to report, or to read a consistent set.

    :param folder: the output folder (nothing happens if it does not exist).
    :param names: entry names whose stale temporary files (``.NAME.*.tmp``) are deleted too.
    :return: what was finished and what was removed.
    :raises ExportError: if the folder cannot be locked or holds a journal this program did not
        write, or a move fails.
    """
    target = Path(folder)
    _check_names(names)
    if not target.is_dir():
        return Recovery()
    try:
        with _folder_lock(target):
            return _recover_locked(target, names)
    except OSError as err:
        raise ExportError(f'Cannot recover the interrupted save in {str(target)!r}: {err}') \
            from err


def _stage(folder: Path, entries: Mapping[str, EntryWriter]) -> Path:
    """Write every entry into a new staging folder; remove it if anything fails."""
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    except OSError as err:
        raise ExportError(f'Cannot write into output folder {str(folder)!r}: {err}') from err
    try:
        for name, writer in entries.items():
            writer(staging / name)
            if not (staging / name).exists():
                raise ExportError(f'the writer of {name!r} wrote nothing at {str(staging)!r}')
            target = folder / name
            if target.exists() and target.is_dir() != (staging / name).is_dir():
                kinds = ('folder', 'file') if target.is_dir() else ('file', 'folder')
                raise ExportError(f'{str(target)!r} is a {kinds[0]}; cannot replace it with a '
                                  f'{kinds[1]}: move it away')
        fsync_directory(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def write_file_set(folder: Path | str, entries: Mapping[str, EntryWriter], *,
                   overwrite: bool = False) -> tuple[Path, ...]:
    """
    Write ``entries`` into ``folder`` as one set (see the module docstring for the protocol).

    :param folder: the output folder (created if missing, with its parents).
    :param entries: entry name → writer; each writer makes its file (or folder) at the path it
        is given, which is in a staging folder, not yet the final place.
    :param overwrite: replace existing entries; otherwise an existing entry is an error and
        nothing is written.
    :return: the final paths, in the order of ``entries``.
    :raises ExportError: if an entry exists without ``overwrite``, the folder cannot be created
        or written, or a writer fails (the previous set is then untouched).
    """
    target = Path(folder)
    names = list(entries)
    _check_names(names)
    if target.exists() and not target.is_dir():
        raise ExportError(f'Output folder {str(target)!r} exists and is not a folder')
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f'Cannot create output folder {str(target)!r}: {err}') from err
    try:
        with _folder_lock(target):
            _recover_locked(target, names)
            existing = [str(target / name) for name in names
                        if (target / name).exists() or (target / name).is_symlink()]
            if existing and not overwrite:
                raise ExportError(f'The following outputs already exist: {existing!r}; pass '
                                  'overwrite=True (CLI: --overwrite) or choose another folder')
            staging = _stage(target, entries)
            journal = {'format': _JOURNAL_FORMAT, 'staging': staging.name, 'entries': names}
            try:
                atomic_write_bytes(target / JOURNAL_NAME, json.dumps(journal).encode('utf-8'))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            _switch(target, staging, names)
    except OSError as err:
        raise ExportError(f'Saving into {str(target)!r} failed: {err}') from err
    return tuple(target / name for name in names)
