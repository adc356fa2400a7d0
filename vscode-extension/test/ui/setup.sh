#!/usr/bin/env bash
# Installs the UI test's real editor, code-server (VS Code in a browser), offline-safe.
#
# code-server's npm postinstall downloads nothing we can reach and insists on building from
# the network, so it is installed with --ignore-scripts and finished by hand, as its
# postinstall.sh would: lib/vscode's production dependencies, the native modules rebuilt
# against this Node (node-gyp takes the headers from /usr/include/node), Debian's ripgrep where
# @vscode/ripgrep expects its binary, and the symlinks postinstall.sh makes.
# Needs: node 20 + npm, g++, make, python3, and Debian's ripgrep, libkrb5-dev and chromium
# (`make editor-tools` installs them). Idempotent: a finished install is left as it is.
set -euo pipefail
cd "$(dirname "$0")"
export npm_config_yes=true npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
[ -f /usr/include/node/node.h ] && export npm_config_nodedir=/usr  # headers without a download

CS=node_modules/code-server
VERSION=$(node -p 'require("./package.json").dependencies["code-server"]')
if [ -f "$CS/.codesearch-ready" ] && [ "$(cat "$CS/.codesearch-ready")" = "$VERSION" ]; then
  echo "code-server $VERSION: ready"; exit 0
fi
for tool in rg chromium; do
  command -v "$tool" >/dev/null || { echo "setup.sh: $tool is missing (apt-get install ripgrep chromium libkrb5-dev)" >&2; exit 1; }
done

started=$(date +%s)
npm ci --ignore-scripts --no-audit --loglevel=error
# npm ci hoists code-server's own dependencies here; argon2 is native:
npm rebuild argon2 --build-from-source --loglevel=error

(
  cd "$CS/lib/vscode"
  npm install --omit=dev --ignore-scripts --no-save --no-audit --loglevel=error  # its shrinkwrap is not in sync for `npm ci`
  npm rebuild @vscode/spdlog node-pty kerberos native-watchdog @vscode/deviceid --loglevel=error
  mkdir -p node_modules/@vscode/ripgrep/bin
  ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
  rm -rf node_modules.asar && ln -s node_modules node_modules.asar
  (cd bin/remote-cli && ln -sf code-linux.sh code-server)
  (cd bin/helpers && ln -sf browser-linux.sh browser.sh)
)
node "$CS/out/node/entry.js" --version >/dev/null
echo "$VERSION" > "$CS/.codesearch-ready"
echo "code-server $VERSION installed in $(( $(date +%s) - started )) s"
