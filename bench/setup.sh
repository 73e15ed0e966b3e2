#!/usr/bin/env bash
# Installs what `pedigree-bench` needs beyond the build (scripts/setup.sh): wrk, the
# HTTP load tool the reads scenario drives both servers with, and nginx, its static
# baseline (nginx-light: the same nginx, fewer modules). The bench starts its own
# nginx with its own config; the packaged service is kept from starting. linux-perf
# is only needed for `appends --perf`. Idempotent and quiet when all is there.
set -euo pipefail

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Keep the package's nginx service from starting (it would take port 80), unless
  # the machine already has a policy in place.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
