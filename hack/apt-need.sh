#!/usr/bin/env bash
# apt-need.sh - installs the Debian packages given that are not installed yet (apt-get update
# first, only when something is missing). Every project script that needs packages calls it.
#
# Usage (as root): bash hack/apt-need.sh WHO PKG...   WHO names the caller in the messages
set -euo pipefail
who=$1; shift
missing=()
for p in "$@"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
echo "$who: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=1200 update -qq
apt-get -o DPkg::Lock::Timeout=1200 install -y -qq --no-install-recommends "${missing[@]}" >&2
