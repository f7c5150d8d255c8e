#!/usr/bin/env bash
# One command from a fresh clone to a map of the shipped sample:
#
#   bash quickstart.sh [OUTDIR] [more `vggt-mapper map` options]     (OUTDIR defaults to out)
#
# 1. installs what is missing: torch (skipped if any build is installed: install your CUDA or
#    CPU build first to choose it), then this package (pip install -e .);
# 2. gets the official VGGT-1B weights (about 5 GB on first use, cached by huggingface_hub);
# 3. maps the sample (vggt_mapper/data/sample) into OUTDIR.
# Without the weights (offline, a proxy, no access) it says so and maps the sample with its
# ground-truth stand-in predictor instead, so the whole pipeline still runs and writes a map:
# clearly labelled as NOT a VGGT result. Set PYTHON to choose the interpreter.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
OUTDIR=out
if [[ $# -gt 0 && $1 != -* ]]; then
  OUTDIR=$1
  shift
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf 'quickstart: %s\n' "$*" >&2; }

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  say 'installing torch (pip default build; install your own CUDA or CPU build first to choose)'
  "$PYTHON" -m pip install 'torch==2.13.0'
fi
# Run from this checkout, so `import vggt_mapper` is this code; the import pulls every dependency
# the map command needs.
if ! "$PYTHON" -c 'import vggt_mapper.cli.map, vggt_mapper.io.glb, vggt_mapper.io.rosbag2
import vggt_mapper.model.loading, av, mcap, tqdm' 2>/dev/null; then
  say 'installing vggt_mapper and its dependencies (pip install -e .)'
  "$PYTHON" -m pip install -e .
fi

say 'getting the VGGT-1B weights (about 5 GB on first use, then cached)'
weights=0
"$PYTHON" - <<'EOF' || weights=$?
import sys

from vggt_mapper.model.errors import WeightsError
from vggt_mapper.model.loading import resolve_checkpoint

try:
    resolve_checkpoint()
except WeightsError as err:
    print(f'quickstart: the official weights cannot be had: {err}', file=sys.stderr)
    sys.exit(3)
EOF

if [[ $weights -eq 0 ]]; then
  say "mapping the shipped sample with VGGT-1B into $OUTDIR/"
  "$PYTHON" -m vggt_mapper.cli map -o "$OUTDIR" "$@"
elif [[ $weights -eq 3 ]]; then
  say 'NO VGGT WEIGHTS: mapping the shipped sample with its ground-truth stand-in predictor'
  say 'instead (vggt_mapper.synthetic.sample:sample_predictor). The pipeline runs end to end,'
  say 'but this map is NOT a VGGT result. Pass --checkpoint /path/to/model.safetensors, or'
  say 'rerun with network access, for the real model.'
  "$PYTHON" -m vggt_mapper.cli map -o "$OUTDIR" \
    --predictor vggt_mapper.synthetic.sample:sample_predictor "$@"
else
  say "checking the weights failed unexpectedly (exit status $weights)"
  exit "$weights"
fi
say "done: open $OUTDIR/map.glb in a glTF viewer (e.g. https://gltf-viewer.donmccurdy.com),"
say "compare $OUTDIR/trajectory.tum with vggt_mapper/data/sample/groundtruth_tum.txt (evo_ape)"
