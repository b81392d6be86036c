#!/usr/bin/env bash
# Wheels that `import irtool` needs and the GPU machine may lack (graphviz, threadpoolctl: pure
# Python; h5py: manylinux, CPython 3.12), downloaded here into .gpu/deps/ (~6 MB, one transfer).
# On the GPU machine: python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/deps/*.whl
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
exclude=$(git rev-parse --git-path info/exclude)
grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
mkdir -p .gpu/deps
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/deps graphviz threadpoolctl h5py
ls -la .gpu/deps
