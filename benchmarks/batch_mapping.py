"""
Throughput of ``vggt-mapper batch``: K recordings mapped by 1, 2 (and GPU) Ray workers.

Figures (printed as a table and written as JSON with metadata): for each worker count, the
batch's wall time, keyframes mapped, keyframes per second in total and per worker, and the
speed-up over one worker (ideal: the worker count, while there are cores for them). One
local Ray instance serves every configuration (its start-up time is printed apart); each
configuration starts its own workers, which load their predictor once.

Recordings are cuts of the shipped sample (``vggt_mapper/data/sample``), mapped with its
ground-truth stand-in predictor on CPU workers. Where the machine has CUDA GPUs, one more
configuration runs one worker per GPU with the tiny VGGT (``--model tiny --device cuda``: the
model's cost, meaningless geometry), or the model given by ``--gpu-model``.

Usage::

    python benchmarks/batch_mapping.py [--smoke] [--recordings K] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import platform
import shutil
import sys
import tempfile
import time
from typing import Any

import ray
from reporting import metadata

from vggt_mapper.cli.batch import map_recording, recording_options
from vggt_mapper.cli.entry_points import build_parser
from vggt_mapper.cli.map import build_predictor, sample_path
from vggt_mapper.cluster.batch import BatchJob, BatchOptions, run_batch
from vggt_mapper.cluster.recordings import expand_inputs

SUITE = 'batch_mapping'
SAMPLE_PREDICTOR = ['--predictor', 'vggt_mapper.synthetic.sample:sample_predictor']


def _metadata() -> dict[str, object]:
    return metadata(SUITE, ray=ray.__version__)


def write_recordings(root: Path, count: int, frames: int) -> list[Path]:
    """
    Cut ``count`` recordings of ``frames`` frames out of the sample (each starting later).

    :param root: an empty folder.
    :param count: recordings.
    :param frames: frames per recording (at most the sample's 40).
    :return: the image folders.
    """
    images = sorted(sample_path().glob('frame_*.jpg'))
    frames = min(frames, len(images))
    step = max(1, (len(images) - frames) // max(1, count - 1)) if count > 1 else 0
    folders = []
    for index in range(count):
        folder = root / f'rec{index:02d}'
        folder.mkdir(parents=True)
        start = min(index * step, len(images) - frames)
        for image in images[start:start + frames]:
            shutil.copy(image, folder / image.name)
        folders.append(folder)
    return folders


def run_config(label: str, folders: list[Path], map_options: list[str], workers: int,
               gpus_per_worker: float, outroot: Path) -> dict[str, Any]:
    """Map every recording with ``workers`` workers; return the row of the table."""
    args = build_parser().parse_args(['batch', 'unused', '-o', str(outroot), *map_options])
    jobs = [BatchJob(recording, recording_options(args, recording))
            for recording in expand_inputs([str(folder) for folder in folders])]
    options = BatchOptions(outroot=outroot, workers=workers, gpus_per_worker=gpus_per_worker,
                           retries=0)
    start = time.perf_counter()
    report = run_batch(jobs, options, map_recording, build_predictor)
    wall_s = time.perf_counter() - start
    failed = [result.error for result in report.results if result.status != 'done']
    if failed:
        raise RuntimeError(f'{label}: recordings failed: {failed}')
    keyframes = report.keyframes_mapped
    return {'config': label, 'workers': workers, 'gpus_per_worker': gpus_per_worker,
            'recordings': len(jobs), 'wall_s': round(wall_s, 2), 'keyframes': keyframes,
            'keyframes_per_s': round(keyframes / wall_s, 3),
            'keyframes_per_s_per_worker': round(keyframes / wall_s / workers, 3),
            'mean_recording_s': round(sum(r.time_s for r in report.results) / len(jobs), 2)}


def _table(rows: list[dict[str, Any]]) -> str:
    columns = ['config', 'workers', 'recordings', 'wall_s', 'keyframes', 'keyframes_per_s',
               'keyframes_per_s_per_worker', 'speed_up', 'mean_recording_s']
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---:|' * len(columns)]
    lines += ['| ' + ' | '.join(str(row.get(column, '')) for column in columns) + ' |'
              for row in rows]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--smoke', action='store_true',
                        help='2 short recordings, 1 and 2 workers (tens of seconds)')
    parser.add_argument('--recordings', type=int, default=6, help='K (default 6)')
    parser.add_argument('--frames', type=int, default=24, help='frames per recording')
    parser.add_argument('--gpu-model', default='tiny', choices=('tiny', 'vggt-1b'),
                        help='model of the GPU configuration (default tiny)')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results',
                        help='folder of the JSON result')
    args = parser.parse_args(argv)
    count, frames = (2, 8) if args.smoke else (args.recordings, args.frames)
    cpus = os.cpu_count() or 1
    start = time.perf_counter()
    ray.init(num_cpus=max(2, cpus), include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - start
    gpus = int(ray.cluster_resources().get('GPU', 0))
    print(f'# {SUITE}: {count} recordings of {frames} sample frames; Ray started in '
          f'{ray_start_s:.1f} s ({cpus} CPUs, {gpus} GPUs; load average '
          f'{os.getloadavg()[0]:.1f})')
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix='batch_bench_') as temp:
            folders = write_recordings(Path(temp) / 'in', count, frames)
            configs = [('cpu, sample stand-in', SAMPLE_PREDICTOR, n, 0.0) for n in (1, 2)]
            if gpus:
                configs.append((f'gpu, {args.gpu_model}', ['--model', args.gpu_model,
                                                           '--device', 'cuda'], gpus, 1.0))
            for label, options, workers, gpw in configs:
                rows.append(run_config(label, folders, [*options, '--no-loops'], workers, gpw,
                                       Path(temp) / f'out-{len(rows)}'))
                print(f'  {label}, {workers} workers: {rows[-1]["wall_s"]} s', flush=True)
    finally:
        ray.shutdown()
    base = rows[0]['wall_s']
    for row in rows:
        row['speed_up'] = round(base / row['wall_s'], 2)
    print(_table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    machine = platform.node() or 'machine'
    device = 'gpu' if gpus else 'cpu'
    path = args.out / f'{SUITE}--{machine}--{device}{"--smoke" if args.smoke else ""}.json'
    payload = {'metadata': {**_metadata(), 'ray_start_s': round(ray_start_s, 2), 'gpus': gpus},
               'rows': rows}
    path.write_text(json.dumps(payload, indent=2) + '\n')
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
