#!/usr/bin/env bash
# Lints the committed openapi.yaml with Redocly CLI's `recommended` ruleset: any error fails,
# warnings are shown but pass. Redocly CLI is pinned and installed once under target/redocly
# (its npm package bundles its dependencies, so the pin fixes every line of code it runs);
# npm comes from Debian when the machine has none. Usage: tests/redocly/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

version=2.77.0
prefix=target/redocly
redocly=$prefix/node_modules/.bin/redocly
# Redocly CLI 2.x needs Node.js 20.19+ (20.x) or 22.12+; Debian 12's own nodejs is 18.
node_ok='const [a, b] = process.versions.node.split(".").map(Number);
process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a > 22 ? 0 : 1)'

if ! command -v npm >/dev/null; then
    echo "tests/redocly: installing npm (Debian package)" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
if ! node -e "$node_ok"; then
    echo "FAIL: Redocly CLI $version needs Node.js 20.19+ or 22.12+; this machine has $(node --version)" >&2
    exit 1
fi

installed=$(node -p "require('./$prefix/node_modules/@redocly/cli/package.json').version" 2>/dev/null || true)
if [[ $installed != "$version" ]]; then
    npm install --prefix "$prefix" --save-exact --no-audit --no-fund --no-update-notifier \
        --loglevel=error "@redocly/cli@$version" >/dev/null
fi

# No telemetry, no update notices: CI reaches only the npm registry.
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
    "$redocly" lint --extends=recommended openapi.yaml
