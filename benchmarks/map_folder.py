"""
Saved maps and localization mode on the synthetic room: size, save/load time, accuracy, rate.

Figures (printed as tables and written as JSON with metadata):

* Map folder: a run of ``--laps`` laps of the loop path (200 frames a lap, window 8, overlap 3)
  is saved with ``save_map_folder`` (with and without the COLMAP model), read with
  ``read_map_folder`` and loaded into a new mapper. ``--model-width``: the keyframe images'
  width (518 like VGGT's by default; images dominate the size). Keyframes, bytes of
  ``map_state/`` and ``colmap/``, seconds of each step (median of ``--repeats``).
* Localization: the loaded map localizes a second pass through the same room on another path
  (20 cm aside, 10 cm lower, turned 10°, half a lap) and a pass through another room, per noise
  preset: share of keyframes placed, position and rotation error of the placed ones against
  the ground truth (after the Sim(3) that aligns the map's own keyframes to it, so the map's
  error is included), model calls per keyframe.

``--smoke`` runs both parts at toy sizes in seconds (half a lap of 60 frames, 126-pixel model
images, one repeat; localization with 40-frame passes, first preset only; figures meaningless;
CI runs it; the JSON's name and metadata say ``smoke``).

Usage::

    python benchmarks/map_folder.py [--smoke] [--laps 3] [--repeats 3] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
import shutil
import tempfile
import time

import numpy as np
from reporting import metadata
from scipy.spatial.transform import Rotation

from vggt_mapper.engine import Mapper, MapperConfig
from vggt_mapper.engine.mapper import LOCALIZATION
from vggt_mapper.io.export import save_map_folder
from vggt_mapper.io.map_folder import read_map_folder
from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import (
    feed,
    frame_name,
    FRAME_PERIOD_NS,
    trajectory_error,
)
from vggt_mapper.synthetic.unrelated import TwoWorldsPredictor
from vggt_mapper.synthetic.world import Box, default_room, loop_path, orbit_path

SUITE = 'map_folder'
MODEL_WIDTH = 518  # default of --model-width
LAP_FRAMES = 200
SMOKE_LAP_FRAMES = 60
SMOKE_PASS_FRAMES = 40
SMOKE_MODEL_WIDTH = 126


def _metadata(**extra: object) -> dict[str, object]:
    return metadata(SUITE, **extra)


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())


def _median_s(call: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def second_pass(frames: int) -> np.ndarray:
    offset = np.eye(4)
    offset[:3, :3] = Rotation.from_euler('y', 10.0, degrees=True).as_matrix()
    offset[:3, 3] = [0.2, 0.1, 0.0]
    return orbit_path(frames, step_m=0.04) @ offset


def other_room(frames: int) -> SyntheticSequence:
    room = dataclasses.replace(default_room(), texture_seed=11, objects=(
        Box((-1.0, 0.2, 2.0), (0.5, 1.2, 3.0)), Box((1.5, -0.5, -2.5), (2.5, 1.2, -1.5))))
    return SyntheticSequence(orbit_path(frames, step_m=0.04), room=room, cache_renders=300)


def run_map_folder(laps: float, repeats: int, work: Path, model_width: int,
                   frames_per_lap: int = LAP_FRAMES) -> dict[str, object]:
    sequence = SyntheticSequence.loop(frames_per_lap=frames_per_lap, laps=laps,
                                      cache_renders=200)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=model_width)
    config = MapperConfig(window_size=8, overlap=3)
    row: dict[str, object] = {'frames': len(sequence), 'model_width': model_width}
    with Mapper(config, predictor) as mapper:
        feed(mapper, sequence)
        row['keyframes'] = len(mapper.store)
        with mapper.map_state() as state:
            for colmap in (False, True):
                target = work / f'map_{colmap}'

                def save(target: Path = target, colmap: bool = colmap) -> None:
                    shutil.rmtree(target, ignore_errors=True)
                    save_map_folder(target, state, colmap=colmap)

                row[f'save_s{"_colmap" if colmap else ""}'] = _median_s(save, repeats)
    folder = work / 'map_True'
    row['map_state_bytes'] = _bytes(folder / 'map_state')
    row['colmap_bytes'] = _bytes(folder / 'colmap')
    row['exports_bytes'] = _bytes(folder) - row['map_state_bytes'] - row['colmap_bytes']

    def read() -> None:
        with read_map_folder(folder):
            pass

    def load() -> None:
        with read_map_folder(folder) as state, Mapper(config, predictor) as mapper:
            mapper.load_state(state)

    row['read_check_s'] = _median_s(read, repeats)
    row['read_and_load_s'] = _median_s(load, repeats)
    return row


def run_localization(preset: str, work: Path, frames: int = LAP_FRAMES
                     ) -> list[dict[str, object]]:
    lap = loop_path(frames, 1.15)
    room = SyntheticSequence(np.concatenate([lap, second_pass(frames)]), cache_renders=500)
    elsewhere = other_room(frames)
    predictor = TwoWorldsPredictor(*(SyntheticPredictor(world, NOISE_LEVELS[preset],
                                                        model_width=126, noise_per_window=True)
                                     for world in (room, elsewhere)))
    config = MapperConfig(window_size=8, overlap=3)
    folder = work / f'loc_{preset}'
    with Mapper(config, predictor) as mapper:
        feed(mapper, room, stop=len(lap))
        with mapper.map_state() as state:
            save_map_folder(folder, state)
    rows = []
    for name, sequence, frames in (('same room, other path', room, range(len(lap), len(room))),
                                   ('other room', elsewhere, range(len(elsewhere)))):
        with read_map_folder(folder) as state, Mapper(config, predictor) as mapper:
            mapper.load_state(state)
            gt_from_map = trajectory_error(mapper.trajectory(), room).gt_from_world
            mapper.set_mode(LOCALIZATION)
            start = time.perf_counter()
            results = [r for i in frames if (r := mapper.localize_frame(
                sequence.frame(i), i * FRAME_PERIOD_NS, frame_name(i))) is not None]
            seconds = time.perf_counter() - start
            calls = mapper.stats.localization_calls
        position, rotation = [], []
        for result in results:
            if result.world_from_cam is None or sequence is not room:
                continue
            truth = room.poses_world_from_cam[int(result.name[1:])]
            placed = gt_from_map.apply(result.world_from_cam[:3, 3][None])[0]
            position.append(float(np.linalg.norm(placed - truth[:3, 3])))
            turn = gt_from_map.rotation @ result.world_from_cam[:3, :3]
            rotation.append(float(np.degrees(Rotation.from_matrix(turn.T @ truth[:3, :3])
                                             .magnitude())))
        rows.append({
            'preset': preset, 'pass': name, 'keyframes': len(results),
            'placed': sum(r.localized for r in results),
            'rate': sum(r.localized for r in results) / max(len(results), 1),
            'pos_median_m': float(np.median(position)) if position else None,
            'pos_p90_m': float(np.percentile(position, 90)) if position else None,
            'rot_median_deg': float(np.median(rotation)) if rotation else None,
            'rot_max_deg': float(np.max(rotation)) if rotation else None,
            'calls_per_keyframe': calls / max(len(results), 1),
            'seconds_per_keyframe': seconds / max(len(results), 1),
        })
    return rows


def _print_table(rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    print(' | '.join(columns))
    for row in rows:
        print(' | '.join(f'{v:.3g}' if isinstance(v, float) else str(v) for v in row.values()))
    print()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print tables and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--smoke', action='store_true',
                        help='toy sizes, every part in seconds (CI); overrides the sizes below')
    parser.add_argument('--laps', type=float, default=3.0)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--model-width', type=int, default=MODEL_WIDTH)
    parser.add_argument('--presets', nargs='+', default=['default', 'realistic'])
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results',
                        help='folder of the JSON result')
    args = parser.parse_args(argv)
    if args.smoke:
        args.laps, args.repeats, args.model_width = 0.5, 1, SMOKE_MODEL_WIDTH
        args.presets = args.presets[:1]
    lap_frames = SMOKE_LAP_FRAMES if args.smoke else LAP_FRAMES
    pass_frames = SMOKE_PASS_FRAMES if args.smoke else LAP_FRAMES
    with tempfile.TemporaryDirectory() as work:
        folder_row = run_map_folder(args.laps, args.repeats, Path(work), args.model_width,
                                    lap_frames)
        _print_table([folder_row])
        loc_rows = [row for preset in args.presets
                    for row in run_localization(preset, Path(work), pass_frames)]
        _print_table(loc_rows)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f'{SUITE}--vm--cpu{"--smoke" if args.smoke else ""}.json'
    sizes = {'mode': 'smoke' if args.smoke else 'full', 'laps': args.laps,
             'frames_per_lap': lap_frames, 'localization_pass_frames': pass_frames,
             'repeats': args.repeats, 'model_width': args.model_width, 'presets': args.presets}
    path.write_text(json.dumps({'metadata': _metadata(**sizes), 'map_folder': folder_row,
                                'localization': loc_rows}, indent=1) + '\n')
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
