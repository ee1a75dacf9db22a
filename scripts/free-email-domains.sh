#!/usr/bin/env bash
# Refreshes data/free-email-domains.txt, the free-mail and ISP domains a scan leaves
# out of `unmatched_domains`, from the npm package free-email-domains (MIT, by Kiko
# Beats, built from HubSpot's list and kept up to date). Usage:
#   scripts/free-email-domains.sh [version]     (default: latest)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-latest}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "free-email-domains@$version" >/dev/null && tar xzf ./*.tgz)
python3 - "$work/package/domains.json" data/free-email-domains.txt <<'PY'
import json, sys
domains = sorted({d.strip().lower() for d in json.load(open(sys.argv[1])) if d.strip()})
open(sys.argv[2], "w").write("".join(d + "\n" for d in domains))
print(f"{len(domains)} domains")
PY
cp "$work/package/LICENSE.md" data/free-email-domains.LICENSE.md
