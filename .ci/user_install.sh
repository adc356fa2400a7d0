#!/usr/bin/env bash
# A new user's install, driven the way a user drives it: build the wheel from the checkout's
# files, install it WITHOUT extras into a fresh venv (torch==2.13.0 first, the local CPU wheel,
# as the README's first command does), and from a folder outside the checkout, with a fresh HOME,
# run `codesearch index`, `search --json` (the expected hit first; the second call answered by
# the per-user query service the first one started, with the same bytes), `status`, and
# `codesearch serve` over stdio: initialize -> workspace/symbol -> shutdown -> exit (exit code 0),
# by .ci/lsp_client.py (standard library only).
#
#   .ci/user_install.sh [CHECKOUT]    (default: this checkout; e.g. an older tree, to compare)
#
# `make user-install` runs it; .ci/run runs it after the quick tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "${1:-$here/..}" && pwd)
fixture="$here/../vscode-extension/test/fixture"  # shop/payments.py: refund_payment
work=$(mktemp -d "${TMPDIR:-/tmp}/codesearch-user.XXXXXX")
started=$(date +%s)
step() { echo "user-install: [$(( $(date +%s) - started ))s] $*"; }
# the query service the searches start is stopped; the venv holds torch's ~15,000 files: remove
# it in the background, CI's next stage need not wait
stop_services() { for lock in "$work"/run/codesearch/*.lock; do [ -f "$lock" ] && kill "$(cat "$lock")" 2>/dev/null; done; true; }
trap 'stop_services; step "done; removing $work in the background"; rm -rf "$work" &' EXIT
# pip without the notes about this machine's missing local index folders
pip() { "$venv/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

# the wheel, from the files git knows (tracked and new, not ignored): nothing a build left behind
step "building the wheel from $repo"
python3 - "$repo" "$work/src" <<'EOF'
import shutil, subprocess, sys
from pathlib import Path
repo, dest = Path(sys.argv[1]), Path(sys.argv[2])
names = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       check=True, capture_output=True).stdout.decode().split("\0")
for name in filter(None, names):
    if (repo / name).is_file():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, dest / name)
EOF
python3 -m venv "$work/venv"
venv="$work/venv/bin"
pip wheel -q --no-deps -w "$work/dist" "$work/src"
wheel=$(ls "$work"/dist/*.whl)
step "built $(basename "$wheel")"

step "installing torch==2.13.0, then the wheel without extras, into a fresh venv"
pip install -q --no-compile torch==2.13.0  # torch is not ours: skip byte-compiling its 2,300 modules
pip install -q "$wheel"
pip check

# a user's project, outside the checkout; a fresh HOME (pip keeps its cache)
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
export HOME="$work/home"
unset CODESEARCH_HOME CODESEARCH_SERVICE XDG_CACHE_HOME XDG_DATA_HOME XDG_CONFIG_HOME XDG_STATE_HOME
export XDG_RUNTIME_DIR="$work/run"  # the login's runtime folder: where the query service listens
mkdir -p "$HOME" && mkdir -m 700 "$XDG_RUNTIME_DIR"
cp -r "$fixture" "$work/project"
cp -r "$fixture" "$work/editor-project"
cd "$work/project"

step "codesearch index ."
"$venv/codesearch" index .
step "codesearch search --json"
"$venv/codesearch" search --json "give the customer their money back" >"$work/results.json"
python3 - "$work/results.json" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))
results = results["results"] if isinstance(results, dict) else results  # an array, or an object with them
top = results[0] if results else {}
print(f"user-install: first hit {top.get('path')}:{top.get('start_line')} {top.get('symbol')}")
if (top.get("symbol"), top.get("path")) != ("refund_payment", "shop/payments.py"):
    sys.exit(f"user-install: expected refund_payment in shop/payments.py first, got {[r['symbol'] for r in results]}")
EOF
step "codesearch search --json again: the query service answers, with the same bytes as the command's own process"
"$venv/codesearch" search --json "give the customer their money back" >"$work/again.json"
ls "$XDG_RUNTIME_DIR"/codesearch/query-*.sock >/dev/null  # the first search started it
CODESEARCH_SERVICE=off "$venv/codesearch" search --json "give the customer their money back" >"$work/here.json"
cmp "$work/results.json" "$work/again.json" && cmp "$work/again.json" "$work/here.json"
step "codesearch status"
"$venv/codesearch" status

step "codesearch serve over stdio (a folder not indexed yet)"
python3 "$here/lsp_client.py" --root "$work/editor-project" --query "give the customer their money back" \
    --expect refund_payment -- "$venv/codesearch" serve
step "ok: the installed product indexes, searches, reports status and serves an editor"
