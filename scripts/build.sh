#!/usr/bin/env bash
# Configures and builds levee (RelWithDebInfo) into one directory per variant:
#   scripts/build.sh [normal|asan|tsan] [extra cmake -D args...]
#   normal -> build/   asan -> build-asan/ (ASan+UBSan)   tsan -> build-tsan/
# Re-running only rebuilds what changed. Jobs: $LEVEE_BUILD_JOBS, default $(nproc).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

variant="${1:-normal}"
if (($# > 0)); then shift; fi
case "$variant" in
  normal) dir=build sanitize="" ;;
  asan) dir=build-asan sanitize=asan ;;
  tsan) dir=build-tsan sanitize=tsan ;;
  -h | --help)
    sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [normal|asan|tsan] [extra cmake args...]" >&2
    exit 2
    ;;
esac

jobs="${LEVEE_BUILD_JOBS:-$(nproc)}"
echo "build.sh: configuring $variant in $dir/"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEVEE_SANITIZE="$sanitize" "$@"
echo "build.sh: building $variant with -j$jobs"
cmake --build "$dir" -j"$jobs"
echo "build.sh: $variant build ready in $dir/"
