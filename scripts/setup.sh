#!/usr/bin/env bash
# Prepare a checkout: a virtualenv with the pinned packages, the front-end files from npm, compiled translations.
# Usage: scripts/setup.sh [runtime|dev]   (dev adds the test tools). Safe to run again: it only
# reinstalls when a requirements or package file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

profile=${1:-runtime}
# Both profiles include the training stack (requirements-train.txt): the local backend runs the training program (trainer/).
requirements=(-r requirements.txt -r requirements-train.txt)
[ "$profile" = dev ] && requirements=(-r requirements-dev.txt)

# fresh STAMP: the packages recorded by STAMP are at least as new as the requirements files.
fresh() {
  [ -f "$1" ] && [ ! requirements.txt -nt "$1" ] && [ ! requirements-dev.txt -nt "$1" ] \
    && [ ! requirements-train.txt -nt "$1" ]
}

ensure_venv
stamp=".venv/.installed-$profile"
# The dev set includes the runtime set, so a fresh dev install serves both.
if ! fresh "$stamp" && ! fresh .venv/.installed-dev; then
  say "installing Python packages (${requirements[*]})"
  .venv/bin/pip install --quiet --disable-pip-version-check "${requirements[@]}"
  touch "$stamp"
fi

# The optional C helpers (app/**/*.c: the fast check's walk over chat messages); without a compiler the app runs
# their Python twins, slower.
.venv/bin/python scripts/build_native.py || say "could not compile the C helpers: the app uses their Python twins"

# The dialect's tests (tests/openai_api) also drive the newest 2.x OpenAI client, which cannot share the
# virtualenv with the 3.x one: it goes into a folder of its own that those tests put first on PYTHONPATH.
openai2=.venv/openai-2
if [ "$profile" = dev ] && { [ ! -f "$openai2/.installed" ] || [ requirements-openai-2.txt -nt "$openai2/.installed" ]; }; then
  say "installing the 2.x OpenAI client into $openai2"
  rm -rf "$openai2"
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --target "$openai2" -r requirements-openai-2.txt
  touch "$openai2/.installed"
fi

ensure_command npm npm "the Node.js package manager (Debian: apt-get install npm)"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing front-end packages from the npm registry"
  npm ci --no-audit --no-fund --loglevel=error
fi
scripts/vendor_assets.sh

# The pages' translations: the .po catalogs are in the repository, the .mo files the app reads are built here.
scripts/i18n.sh compile
