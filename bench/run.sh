#!/bin/sh
# The whole benchmark in one command: bench/run.sh [--quick] [run.py options]
# Uses python3 (3.11+) from PATH, or $PYTHON, to create the venvs under bench/.venvs/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python3}" "$here/run.py" "$@"
