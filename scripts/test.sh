#!/usr/bin/env bash
# The test command: installs what the tests need (real redis-server,
# redis-tools, nutcracker, memcached; Debian's chromium and chromium-driver
# for the status page's browser test; a Python venv for pip packages when
# tests/requirements.txt exists), then runs the whole cargo test suite.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=0
for bin in redis-server redis-cli redis-benchmark nutcracker memcached; do
    command -v "$bin" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 1 ]; then
    echo "==> installing test servers (apt-get)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools nutcracker memcached >/dev/null
fi

# tests/status_page.rs drives a headless Chromium over WebDriver. Without
# recommends (no fonts-liberation extras, no desktop integration): the
# headless browser needs neither, and it keeps the install short.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "==> installing chromium and chromium-driver (apt-get)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
    # Should a bare image lack something the headless browser needs, take
    # the recommends after all rather than fail the test.
    if ! timeout 60 chromium --headless=new --no-sandbox --disable-gpu --dump-dom 'data:text/html,<p>ok</p>' 2>/dev/null | grep -q '<p>ok</p>'; then
        echo "==> headless chromium did not start; installing its recommends too"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
    fi
fi

if [ -f tests/requirements.txt ]; then
    echo "==> python venv for test helpers"
    if [ ! -x .venv/bin/python ]; then
        if ! python3 -m venv .venv >/dev/null 2>&1; then
            echo "==> installing python3-venv (apt-get)"
            rm -rf .venv
            $SUDO apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv .venv
        fi
    fi
    .venv/bin/pip install -q -r tests/requirements.txt
    export PATH="$PWD/.venv/bin:$PATH"
fi

echo "==> cargo test"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
set +e
cargo test --locked --lib --bins --tests "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$LOG"
exit "$rc"
