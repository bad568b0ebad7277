#!/bin/sh
# Container entry point: `run` (the default), `migrate` or `check`, plus their options.
#
# The command is exec'd, so treasury replaces this shell and receives docker's SIGTERM
# itself (a shell in between would swallow it, and `docker stop` would end in SIGKILL
# mid-send). Nothing secret is read here: treasury reads /run/secrets/<name> on its own,
# so secrets never pass through the environment (`docker inspect`, /proc/*/environ).
set -eu

command="${1:-run}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$command" in
    run | migrate | check)
        exec treasury "$command" "$@"
        ;;
    -h | --help | help)
        echo "usage: treasury-entrypoint [run|migrate|check] [options]"
        ;;
    *)
        echo "treasury-entrypoint: unknown command '$command' (expected run, migrate or check)" >&2
        exit 64
        ;;
esac
