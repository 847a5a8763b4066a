#!/usr/bin/env bash
# Sets up everything this project needs on a fresh Debian machine with Python 3.11:
# a virtual environment in .venv with the package and its test extras, and (with --browser,
# which `make test` passes) Debian's Chromium for the Playwright tests and Debian's
# redis-server for the scale-out tests. Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
[ "${1:-}" = "--browser" ] && want_browser=1

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: need Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi

stamp=.venv/.installed-$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python dependencies"
  .venv/bin/python -m pip install -q --upgrade pip
  # compat: a plain path in a .pth file; the default editable mode installs an import hook
  # that every forked Python child would pay for at start-up (a few ms each).
  .venv/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# Chromium for the browser tests, and a CJK font so the seeds' Chinese text (结果, ...) shows
# in screenshots instead of empty boxes; redis-server for the scale-out tests (they start
# their own on a free port; `make run` needs no Redis).
missing=()
if [ "$want_browser" = 1 ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing+=(fonts-wqy-microhei)
  command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]} (Debian packages) for the browser and scale-out tests"
  SUDO=()
  [ "$(id -u)" = 0 ] || SUDO=(sudo)
  if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; then
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: cannot install ${missing[*]} (not root, no sudo); the tests that need them will be skipped" >&2
  fi
fi
