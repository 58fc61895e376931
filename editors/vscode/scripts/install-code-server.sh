#!/usr/bin/env bash
# Installs code-server 4.100.0 (VS Code 1.100, the newest release that runs on Node 20) into a cache directory
# outside the repository, for the extension's test in real VS Code. Idempotent: a second run only checks it.
#
#   install-code-server.sh           install if needed, then print the code-server executable's path
#   install-code-server.sh --where   print the path if it is installed (exit 1 if not); installs nothing
#
# The directory is $OH_LSP_CODE_SERVER_DIR, else ${XDG_CACHE_HOME:-~/.cache}/oh-lsp/code-server-4.100.0.
# What the install needs on these machines (see the notes in shared/notes/editors.md): root with --unsafe-perm,
# Node's headers from /usr (npm_config_nodedir), Debian's libkrb5-dev for the kerberos module, npm_config_yes so that
# node-pty's build can run node-gyp, and Debian's ripgrep packed where @vscode/ripgrep looks for its download.
set -euo pipefail

VERSION=4.100.0
RIPGREP_PACKAGE_VERSION=1.15.11          # @vscode/ripgrep as code-server $VERSION pins it
RIPGREP_ASSET=ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz
DIR="${OH_LSP_CODE_SERVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oh-lsp/code-server-$VERSION}"
BIN="$DIR/node_modules/.bin/code-server"

installed() { [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^$VERSION "; }

if [ "${1:-}" = "--where" ]; then
  installed && { echo "$BIN"; exit 0; }
  echo "code-server $VERSION is not installed in $DIR (run $0)" >&2
  exit 1
fi
if installed; then echo "$BIN"; exit 0; fi

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
missing=()
command -v rg >/dev/null 2>&1 || missing+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# @vscode/ripgrep's postinstall downloads rg from outside the registries; give it Debian's rg in its cache instead.
RG_CACHE="${TMPDIR:-/tmp}/vscode-ripgrep-cache-$RIPGREP_PACKAGE_VERSION"
if [ ! -s "$RG_CACHE/$RIPGREP_ASSET" ]; then
  mkdir -p "$RG_CACHE"
  staging="$(mktemp -d)"
  cp "$(command -v rg)" "$staging/rg"
  tar -C "$staging" -czf "$RG_CACHE/$RIPGREP_ASSET" rg
  rm -rf "$staging"
fi

mkdir -p "$DIR"
echo "installing code-server $VERSION into $DIR (about 2-3 minutes)" >&2
start=$SECONDS
(
  cd "$DIR"
  [ -f package.json ] || echo '{"name": "oh-lsp-code-server", "private": true}' > package.json
  npm_config_nodedir=/usr npm_config_yes=true npm_config_audit=false npm_config_fund=false \
    npm_config_update_notifier=false npm install --no-save --unsafe-perm --loglevel=error "code-server@$VERSION" >&2
)
installed || { echo "code-server $VERSION did not install correctly into $DIR" >&2; exit 1; }
echo "code-server $VERSION installed in $((SECONDS - start)) s" >&2
echo "$BIN"
