"""
Working folders for uploads, and the only way a client-given ``target_dir`` is accepted.

The server keeps everything it writes (uploads, scenes, GLBs, window answers) under one private
root made like ``mkdtemp``: a fresh, unpredictable name, mode 0700, created by this process, so
no other local user can plant a symlink there or read what is uploaded. The folder it is made in
(``--workdir``, default the system temp dir) must be a real folder owned by this user (or the
system temp dir): a symlink or someone else's folder is refused.

The official demo takes ``target_dir`` from the client and opens whatever folder it names. Here a
``target_dir`` is an opaque name this server handed out (``upload_<UTC time>_<128-bit token>``):
it is accepted only if it matches that pattern exactly, was created by this process and still
exists under the root. Anything else (``..``, absolute paths, other folders) is refused. Folders
older than ``max_age_s`` are deleted by a timer (``start_expiry``), whether or not requests come.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
import logging
import os
from pathlib import Path
import re
import secrets
import shutil
import stat
import tempfile
import threading
import time

from vggt_mapper.web.errors import UnsafeFolderError, WorkdirError

__all__ = ['Workdir', 'WorkdirRegistry', 'make_private_root']

_LOG = logging.getLogger(__name__)
_NAME_PATTERN = re.compile(r'upload_\d{8}T\d{6}_[0-9a-f]{32}')
ROOT_PREFIX = 'vggt_mapper_web_'


def _check_parent(parent: Path) -> None:
    """Refuse a parent folder that is a symlink, not a folder, or owned by another user."""
    try:
        info = parent.lstat()
    except FileNotFoundError:
        parent.mkdir(mode=0o700, parents=True)
        info = parent.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFolderError(f'working folder {str(parent)!r} is a symlink; give a real '
                                'folder (a symlink there could point anywhere)')
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeFolderError(f'working folder {str(parent)!r} is not a folder')
    if info.st_uid != os.geteuid():
        raise UnsafeFolderError(f'working folder {str(parent)!r} belongs to user id '
                                f'{info.st_uid}, not to this user ({os.geteuid()}); give a '
                                'folder of your own')


def make_private_root(parent: Path | None = None, prefix: str = ROOT_PREFIX) -> Path:
    """
    Create the server's private working root (``mkdtemp``: new name, mode 0700).

    :param parent: where to create it; None is the system temp dir (shared, sticky: only the
        new folder's own name and mode matter there).
    :param prefix: start of the folder's name.
    :return: the new folder (resolved).
    :raises UnsafeFolderError: when ``parent`` is a symlink, not a folder, or not this user's.
    """
    if parent is not None:
        _check_parent(Path(parent))
    # mkdtemp creates the folder itself (mkdir fails if the name exists), with mode 0700 and a
    # random name: nothing can be planted in advance.
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=None if parent is None else parent))
    return root.resolve()


@dataclass(frozen=True)
class Workdir:
    """
    One upload's working folder.

    :param name: the opaque name handed to the client as ``target_dir``.
    :param path: the folder on this server.
    """

    name: str
    path: Path

    @property
    def images_dir(self) -> Path:
        """Folder of the uploaded images or sampled video frames."""
        return self.path / 'images'

    @property
    def scene_path(self) -> Path:
        """Return the path of the cached per-keyframe predictions of the last reconstruction."""
        return self.path / 'scene.npz'


class WorkdirRegistry:
    """Creates, resolves and expires the working folders of one server process."""

    def __init__(self, root: Path, max_age_s: float) -> None:
        """
        Use ``root`` (from ``make_private_root``) for the working folders.

        :param root: the private root; it must exist.
        :param max_age_s: folders older than this are deleted by ``cleanup``.
        """
        self.root = Path(root).resolve()
        self.max_age_s = float(max_age_s)
        self._created: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def create(self) -> Workdir:
        """
        Make a new, empty working folder with an ``images`` subfolder.

        :return: the folder.
        """
        stamp = datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')
        name = f'upload_{stamp}_{secrets.token_hex(16)}'
        workdir = Workdir(name=name, path=self.root / name)
        workdir.images_dir.mkdir(parents=True)
        with self._lock:
            self._created[name] = time.monotonic()
        return workdir

    def resolve(self, target_dir: object) -> Workdir:
        """
        Turn a client-given ``target_dir`` into a working folder, refusing anything else.

        :param target_dir: the value the client sent.
        :return: the working folder.
        :raises WorkdirError: when it is not a live folder this server created.
        """
        if not isinstance(target_dir, str) or target_dir in ('', 'None'):
            raise WorkdirError('No valid target directory found. Please upload first.')
        if not _NAME_PATTERN.fullmatch(target_dir):
            raise WorkdirError(
                f'target_dir {target_dir[:80]!r} is not a working folder of this server; pass '
                'the target_dir returned by /update_gallery_on_upload (paths are not accepted)')
        with self._lock:
            known = target_dir in self._created
        path = self.root / target_dir
        if not known or not path.is_dir():
            raise WorkdirError(
                f'target_dir {target_dir!r} is unknown or has expired (older than '
                f'{self.max_age_s:.0f} s); upload the files again')
        return Workdir(name=target_dir, path=path)

    def cleanup(self, now: float | None = None) -> list[str]:
        """
        Delete working folders older than ``max_age_s``.

        :param now: the ``time.monotonic()`` reading to compare with (tests pass one).
        :return: the names deleted.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            expired = [name for name, born in self._created.items()
                       if now - born > self.max_age_s]
            for name in expired:
                del self._created[name]
        for name in expired:
            shutil.rmtree(self.root / name, ignore_errors=True)
        if expired:
            _LOG.info('deleted %d expired working folders', len(expired))
        return expired

    def start_expiry(self, period_s: float | None = None) -> None:
        """
        Delete expired folders on a timer thread until ``close`` (no request needed).

        :param period_s: seconds between sweeps (default: a quarter of ``max_age_s``, at most a
            minute), so a folder outlives its age by at most one period.
        """
        if self._sweeper is not None:
            return
        period = period_s if period_s is not None else min(self.max_age_s / 4.0, 60.0)

        def sweep() -> None:
            while not self._stop.wait(period):
                self.cleanup()

        self._sweeper = threading.Thread(target=sweep, name='workdir-expiry', daemon=True)
        self._sweeper.start()

    def remove(self, workdir: Workdir) -> None:
        """
        Delete one working folder now.

        :param workdir: a folder from ``create``.
        """
        with self._lock:
            self._created.pop(workdir.name, None)
        shutil.rmtree(self.root / workdir.name, ignore_errors=True)

    def close(self) -> None:
        """Stop the expiry timer and delete the whole private root (server shutdown)."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)
        with self._lock:
            self._created.clear()
        shutil.rmtree(self.root, ignore_errors=True)
