#!/usr/bin/env bash
# Installs Debian's chromium for the report's browser test (Playwright drives it; no browser download).
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
sudo_cmd=""
[[ "$(id -u)" -eq 0 ]] || sudo_cmd="sudo -n"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium
