#!/usr/bin/env bash
# The translation catalogs: extract every marked string (babel.cfg) into translations/messages.pot, merge it
# into each language's messages.po (new strings empty, changed ones fuzzy: translate them, then drop the
# fuzzy flag), and compile the .mo files the app reads. Usage: scripts/i18n.sh [compile]  (compile only).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

pybabel=.venv/bin/pybabel
[ -x "$pybabel" ] || die "no $pybabel: run scripts/setup.sh first"
if [ "${1:-}" != compile ]; then
  say "extracting the marked strings into translations/messages.pot"
  # No locations and sorted output: the files change only when a string does, so branches merge cleanly.
  "$pybabel" -q extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output --no-wrap \
    --project "Finetune Studio" --copyright-holder "Finetune Studio" -o translations/messages.pot .
  say "updating the catalogs of translations/*/"
  # The catalogs follow the template's order, without locations, like it.
  "$pybabel" -q update -i translations/messages.pot -d translations --no-wrap --ignore-obsolete
fi
say "compiling the catalogs"
"$pybabel" -q compile -d translations
