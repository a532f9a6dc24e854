#!/bin/sh
# A service that reads the rendered file (`tether run --config-out DIR`) and
# reloads when it changes. One inotify event per version: the rename of the
# ..data symlink (config.json itself is a symlink through it and never
# changes). inotifywait is in Debian's inotify-tools.
#
#   watch-config-dir.sh DIR
set -eu
dir=$1

reload() {
  # Here the service would re-read its settings; a reader never sees a
  # half-written file.
  echo "config $(readlink "$dir/..data" | sed 's/^\.\.//') $(cat "$dir/config.json")"
}

[ -e "$dir/config.json" ] && reload
inotifywait -q -m -e moved_to --format '%f' "$dir" | while read -r name; do
  [ "$name" = "..data" ] && reload
done
