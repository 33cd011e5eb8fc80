#!/usr/bin/env bash
# CI: the Dask integration (fastsoftmax.dask) on a real dask.distributed LocalCluster.
# Runs inside CI's venv, where fastsoftmax and the [test] extra are installed; adds the [dask] extra.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pip install -q '.[dask]'
python -c "import dask, distributed, fastsoftmax.dask; print('dask', dask.__version__, 'distributed', distributed.__version__)"
# -p no:cacheprovider: leave no .pytest_cache behind; the test file starts and closes its own cluster.
timeout 600 python -m pytest -q -p no:cacheprovider tests/test_dask.py
