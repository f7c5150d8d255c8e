"""Atomic file writes: a reader never sees a half-written export, a failure leaves no file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
import errno
import logging
import os
from pathlib import Path
import tempfile
from typing import BinaryIO

from vggt_mapper.io.errors import ExportError

__all__ = ['atomic_write', 'atomic_write_bytes', 'check_writable', 'fsync_directory',
           'prepare_output_folder']

_LOG = logging.getLogger(__name__)


def check_writable(paths: list[Path], *, overwrite: bool, folders: Sequence[Path] = ()
                   ) -> None:
    """
    Refuse early when outputs exist and overwriting was not asked for.

    :param paths: the files and folders about to be written.
    :param overwrite: True to allow replacing existing outputs.
    :param folders: those of ``paths`` that are written as folders (a folder there is an
        earlier output, replaced with ``overwrite``).
    :raises ExportError: if ``overwrite`` is False and some of ``paths`` exist, or a file's
        path is a directory.
    """
    directories = [str(path) for path in paths if path.is_dir() and path not in folders]
    if directories:
        raise ExportError(f'Cannot write over these directories: {directories!r}')
    if overwrite:
        return
    existing = [str(path) for path in paths if path.exists() or path.is_symlink()]
    if existing:
        raise ExportError(f'The following outputs already exist: {existing!r}; '
                          'pass overwrite=True (CLI: --overwrite) or choose another folder')


def fsync_directory(directory: Path) -> None:
    """
    Make the renames in ``directory`` durable (not every platform can open a folder: no-op).

    :param directory: the folder.
    """
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _describe_blocker(folder: Path) -> str:
    """Name the path that stops ``folder`` from being created (a file on the way)."""
    for parent in [folder, *folder.parents]:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                return f'{str(parent)!r} is a file, not a folder'
            return ''
    return ''


def prepare_output_folder(folder: Path | str) -> list[Path]:
    """
    Make sure outputs can be written into ``folder`` before any work is done.

    Creates the folder (and missing parents), then writes and removes a hidden probe file, so a
    path under a file, a read-only mount, a full quota or missing permissions are found before
    the first frame, not after an hour of mapping.

    :param folder: the output folder.
    :return: the folders this call created, deepest first (remove them, if still empty, when
        nothing ends up being written).
    :raises ExportError: if the folder cannot be created or written; the message says why.
    """
    target = Path(folder)
    created = [path for path in [target, *target.parents] if not path.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        blocker = _describe_blocker(target) or str(err)
        raise ExportError(f'Cannot create the output folder {str(target)!r}: {blocker}; choose '
                          'another folder') from err
    except OSError as err:
        raise ExportError(f'Cannot create the output folder {str(target)!r}: '
                          f'{err.strerror or err}; choose a writable folder') from err
    try:
        descriptor, probe = tempfile.mkstemp(prefix='.vggt_mapper-probe-', dir=target)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as err:
        raise ExportError(f'The output folder {str(target)!r} is not writable: '
                          f'{err.strerror or err}; choose a writable folder') from err
    return created


@contextmanager
def atomic_write(path: Path | str, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """
    Open a temporary file next to ``path`` and move it onto ``path`` when the block succeeds.

    The data go to a hidden temporary file in the same folder, are flushed and fsynced, then
    renamed onto ``path`` (atomic on POSIX). If the block raises, the temporary file is removed
    and ``path`` is untouched.

    :param path: the final file.
    :param overwrite: replace ``path`` if it exists; otherwise an existing file is an error.
    :return: a context manager yielding the binary file object to write to.
    :raises ExportError: if ``path`` exists and ``overwrite`` is False, or the write fails.
    """
    target = Path(path)
    check_writable([target], overwrite=overwrite)
    directory = target.parent if str(target.parent) else Path('.')
    try:
        descriptor, temp_name = tempfile.mkstemp(prefix=f'.{target.name}.', suffix='.tmp',
                                                 dir=directory)
    except OSError as err:
        raise ExportError(f'Cannot create a file in {str(directory)!r}: {err}') from err
    temp_path = Path(temp_name)
    try:
        with os.fdopen(descriptor, 'wb') as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes 0600 files; exports are ordinary readable files (reading the umask
        # would mean setting it, which races with other threads).
        os.chmod(temp_path, 0o644)
        _move_into_place(temp_path, target, overwrite=overwrite)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    fsync_directory(directory)


def _move_into_place(temp_path: Path, target: Path, *, overwrite: bool) -> None:
    """
    Move ``temp_path`` onto ``target``.

    Without overwrite, never clobber a file that appeared meanwhile (a hard link fails if the
    name exists).
    """
    try:
        if overwrite:
            os.replace(temp_path, target)
            return
        try:
            os.link(temp_path, target)
        except FileExistsError as err:
            raise ExportError(f'{str(target)!r} appeared while it was being written; '
                              'pass overwrite=True to replace it') from err
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            # Filesystems without hard links: the early existence check has to do.
            _LOG.debug('hard links unsupported in %s, renaming', target.parent)
            os.replace(temp_path, target)
            return
        temp_path.unlink()
    except ExportError:
        raise
    except OSError as err:
        raise ExportError(f'Cannot write {str(target)!r}: {err}') from err


def atomic_write_bytes(path: Path | str, data: bytes, *, overwrite: bool = False) -> Path:
    """
    Write ``data`` to ``path`` atomically (see ``atomic_write``).

    :param path: the final file.
    :param data: the whole content.
    :param overwrite: replace ``path`` if it exists.
    :return: ``path`` as a ``Path``.
    :raises ExportError: if ``path`` exists and ``overwrite`` is False, or the write fails.
    """
    target = Path(path)
    with atomic_write(target, overwrite=overwrite) as stream:
        try:
            stream.write(data)
        except OSError as err:
            raise ExportError(f'Cannot write {str(target)!r}: {err}') from err
    return target
