#!/usr/bin/env bash
# System packages some tests use for real: Prometheus/promtool (scrape + rule checks),
# Chromium (reports rendered headless) and PostgreSQL (the lake's catalog). Installed from Debian when missing and we can;
# the tests that need them skip with a clear reason when they truly cannot be installed.
set -u
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# PostgreSQL: the shared lake's catalog and coordination (tests start their own server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: not root or no apt-get; tests needing ${need[*]} will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# never start services from package scripts (no prometheus on :9090 behind our back)
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
echo "test-deps: installing ${need[*]} from Debian" >&2
apt-get update -qq >/dev/null 2>&1 || true
for pkg in "${need[@]}"; do
  # prometheus without recommends: no node-exporter service on :9100
  extra=(); [ "$pkg" = prometheus ] && extra=(--no-install-recommends)
  apt-get install -y -qq "${extra[@]}" "$pkg" >/dev/null 2>&1 \
    || echo "test-deps: apt-get install $pkg failed; tests needing it will be skipped" >&2
done
exit 0
