"""The server state without Gradio: model worker, bounded caches, shutdown between windows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import threading

from app_helpers import EXACT, GatedPredictor, MODEL_WIDTH
import pytest

from vggt_mapper.synthetic.predictor import SyntheticPredictor, SyntheticSequence
from vggt_mapper.web import state as state_module
from vggt_mapper.web.errors import ServerClosingError
from vggt_mapper.web.state import ModelWorker, ServerState


def test_the_worker_returns_freed_memory_after_every_job(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[str] = []
    monkeypatch.setattr(state_module, 'release_memory', lambda: released.append(
        threading.current_thread().name))
    worker = ModelWorker()
    try:
        assert worker.run(lambda: 42) == 42
        with pytest.raises(ZeroDivisionError):
            worker.run(lambda: 1 / 0)
    finally:
        worker.close(grace_s=10)
    assert len(released) == 2 and all(name.startswith('vggt-model') for name in released)


def test_a_closed_worker_refuses_new_jobs() -> None:
    worker = ModelWorker()
    assert worker.close(grace_s=10)
    with pytest.raises(ServerClosingError, match='shutting down'):
        worker.run(lambda: 1)


@pytest.fixture()
def state(sequence: SyntheticSequence, image_paths: list[Path],
          tmp_path: Path) -> Iterator[ServerState]:
    """Make a server state with windows of 4 and one reconstruction kept in memory."""
    from app_helpers import web_settings

    settings = web_settings(tmp_path, scenes_cached=1, frames_per_pass=4)
    served = ServerState(SyntheticPredictor(sequence, noise=EXACT, model_width=MODEL_WIDTH),
                         settings)
    try:
        yield served
    finally:
        served.close()


def test_at_most_scenes_cached_reconstructions_stay_in_memory(
        state: ServerState, image_paths: list[Path]) -> None:
    first = state.upload(None, [str(p) for p in image_paths[:4]], 1.0).workdir
    second = state.upload(None, [str(p) for p in image_paths[4:8]], 1.0).workdir
    scene_first = state.reconstruct(first)
    scene_second = state.reconstruct(second)
    assert state.scene(second) is scene_second
    reloaded = state.scene(first)  # read back from its folder, and now the one cached
    assert reloaded is not scene_first and len(reloaded.keyframes) == 4
    assert state.scene(second) is not scene_second


def test_shutdown_stops_a_reconstruction_between_windows(
        sequence: SyntheticSequence, image_paths: list[Path], tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from app_helpers import web_settings

    gate = GatedPredictor(SyntheticPredictor(sequence, noise=EXACT, model_width=MODEL_WIDTH))
    served = ServerState(gate, web_settings(tmp_path, frames_per_pass=4))
    workdir = served.upload(None, [str(p) for p in image_paths], 1.0).workdir
    with ThreadPoolExecutor(max_workers=2) as pool:
        run = pool.submit(served.reconstruct, workdir)
        assert gate.entered.wait(300)  # the first window is in its model pass now
        closing = pool.submit(served.close)
        assert served.worker.cancel.wait(300)
        gate.release.set()  # that pass finishes; shutdown waited for it, then stops the run
        assert closing.result(timeout=300)
        with pytest.raises(ServerClosingError, match='shutting down'):
            run.result(timeout=300)
    assert gate.inner.calls == 1  # type: ignore[attr-defined]  # no window after the stop
    assert not served.root.exists()


def test_shutdown_waits_for_a_request_writing_into_its_folder(
        state: ServerState, image_paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    entered, release = threading.Event(), threading.Event()
    real_save = state_module.save_scene

    def held_save(scene: object, path: Path) -> None:
        entered.set()
        release.wait(600)
        real_save(scene, path)  # type: ignore[arg-type]

    monkeypatch.setattr(state_module, 'save_scene', held_save)
    workdir = state.upload(None, [str(p) for p in image_paths[:4]], 1.0).workdir
    with ThreadPoolExecutor(max_workers=2) as pool:
        run = pool.submit(state.reconstruct, workdir)
        assert entered.wait(300)  # the model is done; the request is writing its scene
        closing = pool.submit(state.close)
        with pytest.raises(TimeoutError):  # close cannot end before that write has
            closing.result(timeout=1)
        release.set()
        assert closing.result(timeout=300)
        assert len(run.result(timeout=300).keyframes) == 4  # the write succeeded
    assert not state.root.exists()
    with pytest.raises(ServerClosingError, match='shutting down'):
        state.upload(None, [str(image_paths[0])], 1.0)
