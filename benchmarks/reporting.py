"""
What every benchmark of this folder reports alongside its figures: metadata, tables, spread, RSS.

Like kornia's ``benchmarks/common.py``: each JSON carries the commit (and whether the worktree
had uncommitted changes), library versions, the CPU and thread count, so that figures from two
machines or two commits can be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
import datetime
from importlib.metadata import PackageNotFoundError, version
import os
from pathlib import Path
import platform
import re
import subprocess
import threading

import numpy as np
import psutil

__all__ = ['RssSampler', 'cpu_name', 'metadata', 'quartiles', 'table', 'vm_hwm_bytes']


def _git(*args: str) -> str:
    try:
        return subprocess.run(['git', *args], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return ''


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def cpu_name() -> str:
    """Return the CPU model (``/proc/cpuinfo``), or the machine type where it is not known."""
    try:
        found = re.search(r'model name\s*:\s*(.+)', Path('/proc/cpuinfo').read_text())
    except OSError:
        found = None
    return found.group(1).strip() if found else (platform.processor() or platform.machine())


def metadata(suite: str, **extra: object) -> dict[str, object]:
    """
    Return the metadata block of a result file.

    :param suite: the benchmark's name.
    :param extra: more entries (seeds, mode, sizes).
    :return: commit, dirty flag, versions, CPU, threads, date and ``extra``.
    """
    import torch

    return {
        'suite': suite,
        'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'commit': _git('rev-parse', 'HEAD'),
        'worktree_dirty': bool(_git('status', '--porcelain', '--untracked-files=no')),
        'python': platform.python_version(),
        'numpy': np.__version__,
        'torch': torch.__version__,
        'gtsam': _version('gtsam'),
        'evo': _version('evo'),
        'faiss': _version('faiss-cpu'),
        'device': 'cpu',
        'cpu': cpu_name(),
        'cpu_count': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'load_average_1min': os.getloadavg()[0],
        **extra,
    }


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """
    Return the median and the interquartile range.

    :param values: at least one value.
    :return: ``(median, q3 - q1)``.
    """
    q1, median, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(median), float(q3 - q1)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return 'yes' if value else 'NO'
    if isinstance(value, float):
        return f'{value:.4g}'
    if value is None:
        return '-'
    if isinstance(value, dict):
        return ', '.join(f'{key} {count}' for key, count in sorted(value.items())) or '-'
    return str(value)


def table(title: str, rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """
    Format rows in Markdown: floats to 4 significant digits, booleans as yes or NO.

    :param title: the heading.
    :param rows: one dict per row.
    :param columns: the keys to show, in order.
    :return: the table.
    """
    lines = [f'\n## {title}', '| ' + ' | '.join(columns) + ' |',
             '|' + '---:|' * len(columns)]
    lines += ['| ' + ' | '.join(_cell(row.get(column)) for column in columns) + ' |'
              for row in rows]
    return '\n'.join(lines)


def _is_pool_worker(process: psutil.Process) -> bool:
    # multiprocessing's spawned workers run ``spawn_main``; its resource tracker does not.
    try:
        return any('spawn_main' in part for part in process.cmdline())
    except psutil.Error:
        return False


class RssSampler:
    """
    Sample resident memory in a thread: this process's, and its spawned worker processes'.

    The workers are the children that run ``multiprocessing.spawn`` (the mapper's pose-graph
    optimiser is one); the multiprocessing resource tracker is left out.

    :param period_s: sampling period, seconds.
    :ivar peak_bytes: highest RSS of this process seen.
    :ivar peak_worker_bytes: highest total RSS of the worker processes seen.
    :ivar samples: samples taken.
    """

    def __init__(self, period_s: float = 0.2) -> None:
        self.period_s = period_s
        self.peak_bytes = 0
        self.peak_worker_bytes = 0
        self.samples = 0
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='rss-sampler', daemon=True)

    def rss_bytes(self) -> int:
        """Return this process's RSS now."""
        return int(self._process.memory_info().rss)

    def worker_bytes(self) -> int:
        """Return the summed RSS of the spawned worker processes now (0 if none)."""
        total = 0
        for child in self._process.children(recursive=True):
            if _is_pool_worker(child):
                try:
                    total += int(child.memory_info().rss)
                except psutil.Error:
                    continue  # the worker exited between listing and reading
        return total

    def sample(self) -> None:
        """Take one sample now."""
        self.peak_bytes = max(self.peak_bytes, self.rss_bytes())
        self.peak_worker_bytes = max(self.peak_worker_bytes, self.worker_bytes())
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def __enter__(self) -> RssSampler:
        """Take a first sample and start sampling."""
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop sampling, with a last sample."""
        self._stop.set()
        self._thread.join()
        self.sample()


def vm_hwm_bytes() -> int | None:
    """Return this process's peak RSS as the kernel counted it (``VmHWM``), if known."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
