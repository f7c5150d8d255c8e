"""
The web server's state, shared by every session: settings, model, working folders, caches.

``ServerState`` knows no Gradio: the handlers (``handlers.py``) turn requests into its calls and
its results into component values. Everything it keeps is bounded: working folders expire on a
timer, reconstructions are cached in memory up to ``scenes_cached`` (the rest are read back from
their folders), ``/predict_window`` answers are kept on disk up to ``window_answers_kept``.

Model work (reconstructions and windows) runs on one ``ModelWorker`` thread, one job at a time,
so that a shutdown can stop it between windows and wait for the pass in flight instead of
tearing the process down under it. Every public operation that touches the working folders is
counted (``_operation``): ``close`` refuses new ones and waits for those in flight before it
deletes the folders, so no request writes into a folder being deleted.

After each job and each render the C allocator is asked to give freed memory back to the system
(``release_memory``): without it, the large short-lived arrays of each reconstruction leave the
server's resident memory growing call after call (glibc keeps the freed blocks of its arenas;
see ``benchmarks/web_soak.py``).
"""

from __future__ import annotations

from collections import deque, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
import contextlib
import contextvars
import ctypes
import ctypes.util
from dataclasses import asdict, dataclass
import functools
import hashlib
import json
import logging
from pathlib import Path
import threading
import time
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.predictor.base import Predictor
from vggt_mapper.predictor.remote import save_window_prediction
from vggt_mapper.web.capacity import derive_pass_capacity, PassCapacity
from vggt_mapper.web.errors import ServerClosingError, SkyModelError, UploadError
from vggt_mapper.web.ordering import (
    FrameOrder,
    GridHistogramDescriber,
    ImageDescriber,
    order_by_similarity,
)
from vggt_mapper.web.reconstruction import MapperFactory, plan_passes, ProgressFn, reconstruct
from vggt_mapper.web.scene import (
    load_scene,
    render_glb,
    save_scene,
    Scene,
    SkyMaskFn,
    ViewOptions,
)
from vggt_mapper.web.settings import WebSettings
from vggt_mapper.web.sky import SkySegmenter
from vggt_mapper.web.uploads import import_upload, iter_frames, list_frames, upload_source
from vggt_mapper.web.workdirs import make_private_root, Workdir, WorkdirRegistry

__all__ = [
    'ModelWorker',
    'PredictorSource',
    'RenderedView',
    'ServerState',
    'UploadResult',
    'release_memory',
]

_LOG = logging.getLogger(__name__)
_T = TypeVar('_T')

PredictorSource = Predictor | Callable[[], Predictor]
"""A ready predictor, or a zero-argument factory called on the first model run."""

UPLOAD_DONE = "Upload complete. Click 'Reconstruct' to begin 3D processing."


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library('c')
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), 'malloc_trim', None)  # glibc only
    return trim


def release_memory() -> None:
    """Return the C heap's free pages to the system (glibc ``malloc_trim``; no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class ModelWorker:
    """
    Runs model jobs on one thread, one at a time; stops between jobs on ``close``.

    Jobs run in the caller's ``contextvars`` context, so Gradio's progress reporting works from
    the worker thread.
    """

    def __init__(self) -> None:
        """Start with no thread (it is made on the first job)."""
        self.cancel = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix='vggt-model')
        self._lock = threading.Lock()
        self._futures: set[Future[Any]] = set()

    def run(self, job: Callable[[], _T]) -> _T:
        """
        Run ``job`` on the worker thread and wait for its result.

        :param job: the work (it should check ``cancel`` between long steps).
        :return: what it returned.
        :raises ServerClosingError: when the server is shutting down.
        """
        context = contextvars.copy_context()
        with self._lock:
            if self.cancel.is_set():
                raise ServerClosingError('the server is shutting down; send the request again '
                                         'later')
            future = self._executor.submit(context.run, self._release_after, job)
            self._futures.add(future)
        try:
            return future.result()
        except CancelledError as err:
            raise ServerClosingError('the server is shutting down; the request was not '
                                     'started') from err
        finally:
            with self._lock:
                self._futures.discard(future)

    @staticmethod
    def _release_after(job: Callable[[], _T]) -> _T:
        try:
            return job()
        finally:
            release_memory()

    def close(self, grace_s: float) -> bool:
        """
        Refuse new jobs, drop waiting ones, and wait for the running one.

        :param grace_s: seconds to wait for the running job.
        :return: True if nothing was left running.
        """
        with self._lock:
            self.cancel.set()
            futures = list(self._futures)
        self._executor.shutdown(wait=False, cancel_futures=True)
        _, running = wait_futures(futures, timeout=grace_s)
        return not running


@dataclass(frozen=True)
class UploadResult:
    """
    An upload stored in its working folder.

    :param workdir: the folder (its name is the client's ``target_dir``).
    :param image_paths: the frames, in name order (the gallery).
    :param log: the message for the user.
    """

    workdir: Workdir
    image_paths: tuple[Path, ...]
    log: str


@dataclass(frozen=True)
class RenderedView:
    """
    A GLB of a reconstruction under some view options.

    :param glb_path: the file (served from the working folder).
    :param num_points: points in it.
    :param log: what the user is told about it.
    """

    glb_path: Path
    num_points: int
    log: str


def _read_rgb(path: Path) -> NDArray[np.uint8]:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise UploadError(f'{path.name!r} is not a readable image '
                          f'({type(err).__name__})') from err


class ServerState:
    """
    The app's state shared by all sessions (see the module docstring).

    :param predictor: a ``Predictor``, or a zero-argument factory called on the first model run.
    :param settings: limits and defaults.
    :param mapper_factory: builds the mapping engine (``Mapper`` by default).
    :param describer: global image descriptors for ordering photo sets
        (``GridHistogramDescriber`` by default).
    """

    def __init__(self, predictor: PredictorSource, settings: WebSettings, *,
                 mapper_factory: MapperFactory | None = None,
                 describer: ImageDescriber | None = None) -> None:
        self.settings = settings
        self.mapper_factory: MapperFactory = (mapper_factory if mapper_factory is not None
                                              else Mapper)
        self.describer: ImageDescriber = (describer if describer is not None
                                          else GridHistogramDescriber())
        self.registry = WorkdirRegistry(make_private_root(settings.workdir_root),
                                        settings.workdir_max_age_s)
        self.worker = ModelWorker()
        self._predictor_source = predictor
        self._predictor: Predictor | None = (
            predictor if isinstance(predictor, Predictor) else None)
        self._capacity: PassCapacity | None = None
        self._scenes: OrderedDict[str, Scene] = OrderedDict()
        self._lock = threading.Lock()
        self._sky: SkySegmenter | None = None
        self._sky_error = ''
        self._window_dirs: deque[Workdir] = deque()
        self._operations = threading.Condition()
        self._active = 0
        self._closing = False

    @property
    def root(self) -> Path:
        """Return the private folder that holds everything this server writes."""
        return self.registry.root

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the working-folder expiry timer."""
        self.registry.start_expiry()

    @contextlib.contextmanager
    def _operation(self) -> Iterator[None]:
        """Count one request's work on the folders; refuse it once ``close`` has begun."""
        with self._operations:
            if self._closing:
                raise ServerClosingError('the server is shutting down; send the request again '
                                         'later')
            self._active += 1
        try:
            yield
        finally:
            with self._operations:
                self._active -= 1
                self._operations.notify_all()

    def close(self) -> bool:
        """
        Stop model work and requests in flight (up to the grace time), then delete the root.

        A reconstruction stops between windows; the model pass in flight may finish.

        :return: True if nothing was still running after ``shutdown_grace_s``.
        """
        with self._operations:
            self._closing = True
        grace_s = self.settings.shutdown_grace_s
        finished = self.worker.close(grace_s)
        with self._operations:
            finished = self._operations.wait_for(lambda: self._active == 0,
                                                 timeout=grace_s) and finished
        if not finished:
            _LOG.warning('work was still running %.0f s after shutdown began', grace_s)
        self.registry.close()
        return finished

    # -- model -------------------------------------------------------------------------------

    def predictor(self) -> Predictor:
        """Return the predictor, built on first use when a factory was given."""
        if self._predictor is None:
            factory = self._predictor_source
            assert callable(factory)
            self._predictor = factory()
        return self._predictor

    def capacity(self) -> PassCapacity:
        """Return the frame limit per model pass (``settings.frames_per_pass`` or derived)."""
        if self._capacity is None:
            if self.settings.frames_per_pass is not None:
                self._capacity = PassCapacity(self.settings.frames_per_pass,
                                              f'{self.settings.frames_per_pass} frames (set)')
            else:
                self._capacity = derive_pass_capacity(self.predictor(),
                                                      self.settings.mapper.window_size)
        return self._capacity

    # -- uploads -----------------------------------------------------------------------------

    def upload(self, video: str | None, images: Sequence[str] | None,
               fps: float) -> UploadResult:
        """
        Store an upload in a new working folder; a refused upload leaves nothing behind.

        :param video: the uploaded video file on this server, or None.
        :param images: the uploaded image files on this server, or None.
        :param fps: frames per second sampled from the video.
        :return: the folder, its frames and the user message.
        :raises UploadError: when a limit is broken or nothing usable was uploaded.
        """
        with self._operation():
            workdir = self.registry.create()
            try:
                summary = import_upload(workdir, video, images, fps, self.settings)
            except BaseException:
                self.registry.remove(workdir)
                raise
        log = UPLOAD_DONE if not summary.note else f'{UPLOAD_DONE} Note: {summary.note}.'
        return UploadResult(workdir, summary.image_paths, log)

    def resolve(self, target_dir: object) -> Workdir:
        """
        Turn a client's ``target_dir`` into one of this server's working folders.

        :param target_dir: what the client sent.
        :return: the folder.
        :raises WorkdirError: when it is not a live folder of this server.
        """
        return self.registry.resolve(target_dir)

    # -- reconstructions ---------------------------------------------------------------------

    def order_frames(self, workdir: Workdir) -> FrameOrder:
        """
        Chain a photo set by visual similarity (one image decoded at a time).

        :param workdir: the working folder.
        :return: the order.
        """
        rows = [self.describer.describe([frame.image_rgb])[0] for frame in iter_frames(workdir)]
        return order_by_similarity(np.stack(rows))

    def reconstruct(self, workdir: Workdir, progress: ProgressFn | None = None) -> Scene:
        """
        Map an upload on the model worker and cache the result.

        :param workdir: the working folder of the upload.
        :param progress: called with ``(windows done, windows expected)``.
        :return: the reconstruction.
        :raises UploadError: when the folder holds no frame.
        :raises ReconstructionError: when nothing could be mapped.
        :raises ServerClosingError: when the server shuts down meanwhile.
        """
        frames = list_frames(workdir)
        if not frames:
            raise UploadError('No images found. Check your upload.')

        def job() -> Scene:
            plan = plan_passes(len(frames), upload_source(workdir), self.capacity().frames,
                               self.settings.mapper, lambda: self.order_frames(workdir))
            return reconstruct(iter_frames(workdir, plan.order), len(frames), self.predictor(),
                               plan.config, self.mapper_factory, progress=progress,
                               cancel=self.worker.cancel, plan_note=plan.note)

        with self._operation():
            scene = self.worker.run(job)
            save_scene(scene, workdir.scene_path)
        self._cache_scene(workdir, scene)
        return scene

    def _cache_scene(self, workdir: Workdir, scene: Scene) -> None:
        with self._lock:
            self._scenes[workdir.name] = scene
            self._scenes.move_to_end(workdir.name)
            while len(self._scenes) > self.settings.scenes_cached:
                self._scenes.popitem(last=False)

    def scene(self, workdir: Workdir) -> Scene | None:
        """
        Return a folder's last reconstruction, from memory or from its ``scene.npz``.

        :param workdir: the working folder.
        :return: the scene, or None before the first reconstruction.
        """
        with self._lock:
            if workdir.name in self._scenes:
                self._scenes.move_to_end(workdir.name)
                return self._scenes[workdir.name]
        with self._operation():
            if not workdir.scene_path.is_file():
                return None
            scene = load_scene(workdir.scene_path)
        self._cache_scene(workdir, scene)
        return scene

    def _sky_mask(self, wanted: bool) -> SkyMaskFn | None:
        if not wanted or self.settings.sky_model_path is None:
            return None
        with self._lock:
            if self._sky is None and not self._sky_error:
                try:
                    self._sky = SkySegmenter(self.settings.sky_model_path)
                except SkyModelError as err:
                    _LOG.warning('Filter Sky unavailable: %s', err)
                    self._sky_error = ('Filter Sky is unavailable: the sky model could not be '
                                       'loaded (see the server log); sky was not removed')
            return self._sky

    def render(self, workdir: Workdir, scene: Scene, options: ViewOptions) -> RenderedView:
        """
        Write the GLB of a scene under view options, in the scene's working folder.

        :param workdir: the working folder.
        :param scene: its reconstruction.
        :param options: the controls.
        :return: the file and its log line.
        """
        start = time.perf_counter()
        key = hashlib.sha1(json.dumps(asdict(options), sort_keys=True).encode()).hexdigest()
        path = workdir.path / f'glbscene_{key[:16]}.glb'
        sky = self._sky_mask(options.mask_sky)
        try:
            with self._operation():
                result = render_glb(scene, options, path, self.settings.max_glb_points, sky)
        finally:
            release_memory()
        notes = list(result.notes)
        if options.mask_sky and self._sky_error:
            notes = [self._sky_error if 'Filter Sky' in n else n for n in notes]
        text = (f'Viewer GLB: {result.num_points:,} points (the dense per-frame points left by '
                f'the view filters), rendered in {time.perf_counter() - start:.2f} s')
        if notes:
            text += '. ' + '; '.join(notes)
        return RenderedView(result.path, result.num_points, text)

    # -- remote windows ----------------------------------------------------------------------

    def predict_window(self, image_paths: Sequence[Path]) -> Path:
        """
        Predict one window for a remote client; keep the answer until newer ones push it out.

        :param image_paths: the uploaded images, in window order.
        :return: the answer (``save_window_prediction`` format) in a working folder.
        :raises UploadError: when there is no image, too many, or an unreadable one.
        :raises ServerClosingError: when the server shuts down meanwhile.
        """
        if not image_paths:
            raise UploadError('predict_window needs at least one image')
        if len(image_paths) > self.settings.max_files:
            raise UploadError(f'{len(image_paths)} images in one window, more than the server '
                              f'limit of {self.settings.max_files}')
        frames = [_read_rgb(path) for path in image_paths]
        with self._operation():
            prediction = self.worker.run(lambda: self.predictor().predict(frames))
            workdir = self.registry.create()
            path = save_window_prediction(workdir.path / 'prediction.npz', prediction)
        with self._lock:
            self._window_dirs.append(workdir)
            expired = []
            while len(self._window_dirs) > self.settings.window_answers_kept:
                expired.append(self._window_dirs.popleft())
        for old in expired:
            self.registry.remove(old)
        return path
