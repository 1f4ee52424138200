#!/usr/bin/env bash
# The test command: prepares a fresh machine, then runs every test. Arguments go to `dotnet test`.
# Preparation: Open MPI (the data-parallel tests launch `mpirun -np 2`), installed with apt-get when mpirun is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mpirun >/dev/null 2>&1; then
  echo "mpirun not found: installing Open MPI (openmpi-bin, libopenmpi-dev) for the data-parallel tests" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null
fi

exec dotnet test Grpo.Native.sln -c Release "$@"
