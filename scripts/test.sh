#!/usr/bin/env bash
# The one "run every test" command (also what CI runs through .ci/run):
#   scripts/test.sh [--quick] [--no-deps]
# 1. scripts/install-deps.sh (build + test packages)
# 2. normal build (build/) + ctest, all tests
# 3. ASan+UBSan build (build-asan/) + ctest, all tests, leaks and UB fatal
# Prints a summary (ctest's closing lines per build) and exits non-zero if any step failed.
#   --quick    only the normal build and its tests
#   --no-deps  skip install-deps.sh (packages already present)
# Env: LEVEE_TEST_JOBS (ctest parallelism, default $(nproc)), LEVEE_BUILD_JOBS (see build.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0
deps=1
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --no-deps) deps=0 ;;
    -h | --help)
      sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "usage: $0 [--quick] [--no-deps]" >&2
      exit 2
      ;;
  esac
done

test_jobs="${LEVEE_TEST_JOBS:-$(nproc)}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/levee-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

t_start=$SECONDS
failed=0
summary=() # one line per step

banner() { printf '\n===== %s =====\n' "$*"; }
elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
record() { # record STEP STATUS SECONDS [DETAIL]
  summary+=("$(printf '%-22s %-8s %8s  %s' "$1" "$2" "$(elapsed "$3")" "${4:-}")")
  if [[ "$2" == FAIL ]]; then failed=1; fi
}

# run_ctest NAME BUILD_DIR [VAR=VALUE...]: ctest with the given environment; output is
# teed to a log so the closing lines can be repeated in the summary.
run_ctest() {
  local name="$1" dir="$2" log="$tmp/$1.log"
  shift 2
  env "$@" ctest --test-dir "$dir" --output-on-failure --no-tests=error \
    --parallel "$test_jobs" --timeout 600 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

# ctest_tail NAME: ctest's verdict line, failed-test list and total time, for the summary.
ctest_tail() {
  local log="$tmp/$1.log"
  [[ -f "$log" ]] || return 0
  grep -E 'tests passed, .* tests failed out of|No tests were found|Total Test time' "$log" || true
  sed -n '/^The following tests FAILED:/,/^Errors while running CTest/p' "$log" || true
}

# variant NAME(normal|asan) BUILD_DIR [ctest env...]
variant() {
  local name="$1" dir="$2" t0
  shift 2
  banner "build: $name ($dir/)"
  t0=$SECONDS
  if scripts/build.sh "$name"; then
    record "build $name" PASS $((SECONDS - t0))
  else
    record "build $name" FAIL $((SECONDS - t0)) "see compiler output above"
    record "test $name" SKIPPED 0 "build failed"
    return 0
  fi
  banner "test: $name (ctest in $dir/, -j$test_jobs)"
  t0=$SECONDS
  if run_ctest "$name" "$dir" "$@"; then
    record "test $name" PASS $((SECONDS - t0))
  else
    record "test $name" FAIL $((SECONDS - t0)) "see ctest output above"
  fi
}

if ((deps)); then
  banner "install-deps"
  t0=$SECONDS
  if bash scripts/install-deps.sh; then
    record "install-deps" PASS $((SECONDS - t0))
  else
    record "install-deps" FAIL $((SECONDS - t0))
  fi
fi

variant normal build
if ((!quick)); then
  # LEVEE_TEST_SLOW stretches the integration tests' deadlines for the slower sanitizer binary.
  variant asan build-asan \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LEVEE_TEST_SLOW="${LEVEE_TEST_SLOW:-3}"
fi

banner "summary"
for line in "${summary[@]}"; do echo "$line"; done
for name in normal asan; do
  if [[ -f "$tmp/$name.log" ]]; then
    echo
    echo "ctest ($name):"
    ctest_tail "$name"
  fi
done
echo
echo "total: $(elapsed $((SECONDS - t_start)))"
if ((failed)); then
  echo "RESULT: FAIL"
  exit 1
fi
echo "RESULT: PASS"
