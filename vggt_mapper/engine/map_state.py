"""
A map as data: what must be kept to load it again and go on mapping or localizing in it.

``Mapper.map_state()`` takes a ``MapState`` (the keyframe records, their clouds and images, the
pose graph with its segments, edges and loops, the place descriptors, the numbering) and
``Mapper.load_state(state)`` puts one back: ``restore_map`` rebuilds every part aside — keyframe
store, pose graph, place index, world map — and only a complete rebuild replaces the mapper's
map, so a state that does not fit (inconsistent, damaged values, another descriptor space) is
refused with ``MapStateError`` and the current map is kept.

The state is format-free (``vggt_mapper.io.map_folder`` writes and reads it as a folder). Its
keyframe data is read through ``KeyframeData``: a ``KeyframeStoreView`` when the state comes
from a mapper (own file descriptors: it can be written from another thread while the mapper
goes on), or the folder reader when it comes from disk. Close the state (``with``) when done.

After a load, new keyframes are numbered after the loaded ones and the next window starts a
new segment (its own frame and scale): the loaded map is where the camera was, not where it is.
When the new recording revisits the loaded map, loop closure merges the new segment into it
(the loaded segment has the lower number and keeps its frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import MapperConfig
from vggt_mapper.engine.errors import MapStateError, PlaceError
from vggt_mapper.engine.keyframe_store import (
    KeyframeCloud,
    KeyframeRecord,
    KeyframeStore,
    StoreError,
)
from vggt_mapper.engine.loops import LoopDetector
from vggt_mapper.engine.places import PlaceDescriber, PredictionDescriber
from vggt_mapper.engine.pose_graph import GraphProblem, PoseGraph, PoseGraphError
from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.engine.world_map import WorldMap
from vggt_mapper.geometry.sim3 import Sim3

__all__ = ['KeyframeData', 'MapState', 'PlaceDescriptors', 'RestoredMap', 'keyframe_pose',
           'restore_map']


class KeyframeData(Protocol):
    """Where a state's keyframe clouds and images are read from."""

    def cloud(self, index: int) -> KeyframeCloud:
        """Return a keyframe's local cloud."""
        ...

    def encoded_image(self, index: int) -> bytes:
        """Return a keyframe's image as stored (PNG or JPEG file bytes)."""
        ...

    def close(self) -> None:
        """Release the files."""
        ...


@dataclass(frozen=True)
class PlaceDescriptors:
    """
    The place-recognition index of a map.

    :param space: the descriptor space (``PredictionDescriber.name``): the predictor's own
        descriptors (``'prediction'``) or a describer's name.
    :param keys: (N,) int64 keyframes with a descriptor (featureless images have none).
    :param descriptors: (N, D) float32 unit rows.
    :param accepted_loops: (L, 2) int64 ``(query, candidate)`` of the accepted loops (their
        cooldown goes on after a load).
    """

    space: str
    keys: NDArray[np.int64]
    descriptors: NDArray[np.float32]
    accepted_loops: NDArray[np.int64]

    @property
    def dim(self) -> int:
        """Return the descriptor length D."""
        return int(self.descriptors.shape[1])


@dataclass(frozen=True)
class MapState:
    """
    Everything a mapper needs to continue a map (module docstring).

    :param config: the config the map was built with (for the record; a loaded map goes on
        with the loading mapper's config).
    :param records: the mapped keyframes' records, by index.
    :param graph: the pose graph: nodes (``world_from_node``, segment), edges, anchors.
    :param places: the place descriptors, or None when no window was described.
    :param next_keyframe: the number the next keyframe gets (all keyframes before it were
        selected, mapped or not).
    :param segments_started: segments ever started (merged ones included).
    :param keyframes: reads the keyframes' clouds and images.
    :param snapshot: the fused map at the time (for the exports), None when read from disk.
    """

    config: MapperConfig
    records: tuple[KeyframeRecord, ...]
    graph: GraphProblem
    places: PlaceDescriptors | None
    next_keyframe: int
    segments_started: int
    keyframes: KeyframeData
    snapshot: MapSnapshot | None = None

    def __enter__(self) -> MapState:
        """Return the state; ``close`` on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the keyframe data."""
        self.close()

    def close(self) -> None:
        """Release the keyframe data's files."""
        self.keyframes.close()

    def trajectory(self) -> list[KeyframePose]:
        """Return the keyframe poses, in keyframe order."""
        values = self.graph.world_from_node
        row_of = {int(key): row for row, key in enumerate(self.graph.keys.tolist())}
        return [keyframe_pose(record, values[row_of[record.index]],
                              int(self.graph.segments[row_of[record.index]]))
                for record in self.records]


def keyframe_pose(record: KeyframeRecord, world_from_node: Sim3, segment: int,
                  metres_per_unit: float = 1.0) -> KeyframePose:
    """
    Return a keyframe's pose and camera as the doors see it.

    :param record: the keyframe's record.
    :param world_from_node: its pose-graph value (the camera frame in its home unit).
    :param segment: its segment.
    :param metres_per_unit: the segment's scale factor applied to the translation (1: the
        engine's own unit).
    :return: the pose (``world_from_cam`` is the value's rotation and scaled translation).
    """
    world_from_cam = np.eye(4)
    world_from_cam[:3, :3] = world_from_node.rotation
    world_from_cam[:3, 3] = world_from_node.translation * metres_per_unit
    predicted = record.intrinsics_predicted
    return KeyframePose(record.index, record.name, record.stamp_ns, world_from_cam,
                        record.intrinsics.copy(), record.model_hw,
                        record.intrinsics_original.copy(), record.original_hw, segment,
                        None if predicted is None else predicted.copy())


@dataclass
class RestoredMap:
    """
    The parts of a mapper rebuilt from a state (``Mapper.load_state`` installs them).

    :param store: the keyframe store, holding every keyframe of the state (owned: close it).
    :param graph: the pose graph.
    :param world: the fused world map of every segment.
    :param loops: the loop detector with the place index.
    :param places: the describer, set to the state's descriptor space.
    :param members: the keyframes of each segment, ascending.
    """

    store: KeyframeStore
    graph: PoseGraph
    world: WorldMap
    loops: LoopDetector
    places: PredictionDescriber
    members: dict[int, list[int]]


def _check_consistent(state: MapState) -> None:
    indices = [record.index for record in state.records]
    if indices != sorted(set(indices)):
        raise MapStateError('keyframe records are not in ascending index order without '
                            'duplicates')
    keys = sorted(state.graph.keys.tolist())
    if keys != indices:
        missing = sorted(set(indices) ^ set(keys))[:5]
        raise MapStateError(f'the pose graph and the keyframe records disagree on the '
                            f'keyframes (e.g. {missing})')
    if indices and state.next_keyframe <= indices[-1]:
        raise MapStateError(f'next_keyframe {state.next_keyframe} is not after the last '
                            f'keyframe {indices[-1]}')
    places = state.places
    if places is not None:
        if places.keys.shape != (places.descriptors.shape[0],) or places.descriptors.ndim != 2:
            raise MapStateError(f'{places.keys.shape[0]} place keys for descriptors of shape '
                                f'{places.descriptors.shape}')
        unknown = sorted(set(places.keys.tolist()) - set(indices))
        if unknown:
            raise MapStateError(f'place descriptors of keyframes that are not in the map: '
                                f'{unknown[:5]}')


def _restore_places(state: MapState, config: MapperConfig, describer: PlaceDescriber | None
                    ) -> tuple[LoopDetector, PredictionDescriber]:
    places = PredictionDescriber(describer)
    loops = LoopDetector(config.loops)
    saved = state.places
    if saved is None:
        return loops, places
    places.resume(saved.space, saved.dim)
    for key, descriptor in zip(saved.keys.tolist(), saved.descriptors, strict=True):
        loops.add(key, descriptor)
    for query, candidate in saved.accepted_loops.tolist():
        loops.remember_accepted(query, candidate)
    return loops, places


def _fill_store(state: MapState, graph: PoseGraph, config: MapperConfig,
                store_dir: Path | None) -> tuple[KeyframeStore, WorldMap]:
    store = KeyframeStore(config.store, parent=store_dir)
    world = WorldMap(config.map)
    try:
        for record in state.records:
            cloud = state.keyframes.cloud(record.index)
            store.add_encoded(record, cloud, state.keyframes.encoded_image(record.index))
            world.add(record.index, graph.segment_of(record.index), graph.value(record.index),
                      cloud)
    except BaseException:
        store.close()
        raise
    return store, world


def restore_map(state: MapState, config: MapperConfig, describer: PlaceDescriber | None,
                store_dir: Path | None) -> RestoredMap:
    """
    Rebuild a mapper's parts from a state, aside from any mapper (nothing is changed on error).

    :param state: the map to restore (its keyframe data is read once, copied into a new store).
    :param config: the loading mapper's config (store, map, loops and graph settings).
    :param describer: the loading mapper's place describer (must give the state's space).
    :param store_dir: where the new keyframe store makes its folder.
    :return: the parts.
    :raises MapStateError: if the state is inconsistent or damaged, or its place descriptors
        are of another space than this describer's; the message says what.
    """
    _check_consistent(state)
    try:
        loops, places = _restore_places(state, config, describer)
        graph = PoseGraph.restore(state.graph, config.graph.solver)
        store, world = _fill_store(state, graph, config, store_dir)
    except (PoseGraphError, PlaceError, StoreError, ValueError) as err:
        raise MapStateError(f'cannot load the map: {err}') from err
    members = {segment: sorted(keys) for segment, keys in graph.segments().items()}
    return RestoredMap(store, graph, world, loops, places, members)
