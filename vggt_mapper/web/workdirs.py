"""
Working folders for uploads, and the only way a client-given ``target_dir`` is accepted.

The official demo takes ``target_dir`` from the client and opens whatever folder it names. Here a
``target_dir`` is an opaque name this server handed out (``upload_<UTC time>_<128-bit token>``):
it is accepted only if it matches that pattern exactly, was created by this process and still
exists under the root. Anything else (``..``, absolute paths, other folders) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
import re
import secrets
import shutil
import threading
import time

from vggt_mapper.web.errors import WorkdirError

__all__ = ['Workdir', 'WorkdirRegistry']

_NAME_PATTERN = re.compile(r'upload_\d{8}T\d{6}_[0-9a-f]{32}')


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
        Use ``root`` for the working folders.

        :param root: parent folder (created if missing).
        :param max_age_s: folders older than this are deleted by ``cleanup``.
        """
        self.root = Path(root).resolve()
        self.max_age_s = float(max_age_s)
        self._created: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self) -> Workdir:
        """
        Make a new, empty working folder with an ``images`` subfolder.

        :return: the folder.
        """
        self.cleanup()
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
        self.cleanup()
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
        return expired

    def remove(self, workdir: Workdir) -> None:
        """
        Delete one working folder now.

        :param workdir: a folder from ``create``.
        """
        with self._lock:
            self._created.pop(workdir.name, None)
        shutil.rmtree(self.root / workdir.name, ignore_errors=True)

    def remove_all(self) -> None:
        """Delete every working folder this registry created (server shutdown)."""
        with self._lock:
            names = list(self._created)
            self._created.clear()
        for name in names:
            shutil.rmtree(self.root / name, ignore_errors=True)
