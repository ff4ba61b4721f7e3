#!/bin/sh
# The image's entrypoint for all three uses (`prefect worker start ...`, `mlbatch serve ...`, any `mlbatch ...`):
# an empty volume or tmpfs mounted over /var/lib/mlbatch has none of the scratch directories, so make them,
# then become the command.
set -eu
mkdir -p "$PREFECT_HOME" "$TMPDIR" "$MPLCONFIGDIR"
# prefect.yaml's pull step records the directory `prefect deploy` ran in as {{ $PWD }}, which only shells set
PWD="$(pwd)"
export PWD
exec "$@"
