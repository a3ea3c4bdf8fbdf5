#!/usr/bin/env bash
# Fetch, here (PyPI reachable), what a lent GPU machine lacks to measure with Keras on PyTorch:
# Keras, CodeCarbon and those of their requirements its image does not hold (see the device
# tool's KINDS.md). Python 3.12 wheels into .whl/ (git-ignored; carried by the device call).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
PY=${PYTHON:-.venv/bin/python}
$PY -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "keras>=3.15,<3.16" "codecarbon>=3.3,<3.4"
# Already on the machine's image: drop them so one version of each is installed.
PRESENT="numpy pandas h5py ml_dtypes absl_py rich requests psutil click typer packaging urllib3 idna certifi
charset_normalizer pygments markdown_it_py mdurl python_dateutil six pytz tzdata prometheus_client py_cpuinfo
nvidia_ml_py typing_extensions shellingham pyyaml PyYAML tqdm pyarrow annotated_doc"
for name in $PRESENT; do rm -f .whl/"${name}"-*.whl .whl/"${name^}"-*.whl; done
ls .whl
du -sh .whl
