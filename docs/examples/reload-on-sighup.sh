#!/bin/sh
# A service run by `tether exec --on-config-change signal:SIGHUP -- ...`: it
# reads its settings from TETHER_CONFIG_FILE at start and again on SIGHUP,
# which tether sends only once the new version is on disk.
#
#   tether exec --on-config-change signal:SIGHUP --config-wait 1s:5s \
#     --wait-for-config -- docs/examples/reload-on-sighup.sh
set -eu

load() {
  # Here the service would apply its settings.
  echo "loaded $(cat "$TETHER_CONFIG_FILE")"
}

trap load HUP
load
# Wait in the background so the trap runs as soon as the signal comes.
while :; do
  sleep 1 &
  wait $! || true
done
