#!/usr/bin/env bash
# Installs the Debian packages proximation's tests (or benchmarks) need on a fresh machine.
#   scripts/install-system-deps.sh          what `npm test` needs
#   scripts/install-system-deps.sh bench    also what `npm run bench` needs
# Runs as root as it is (CI containers have no sudo); as another user it re-runs itself through sudo,
# and only when something is missing, so a prepared machine needs no root at all.
set -euo pipefail

packages=(
  bindfs fuse3      # a mount that delivers no inotify events for writes through its backing dir, as NFS
  openssl curl      # certificate checks in tests
  certbot           # the oracle for the certbot layout (its python3 configobj/josepy judge renewal files and account ids)
  pebble            # a real ACME CA for the issuance tests, with pebble-challtestsrv as its DNS
  testssl.sh        # the TLS baseline check: no HIGH or CRITICAL finding against a running proximation
  libjemalloc2      # the allocator the image preloads: the image-content test and the benchmark run proximation on it
  bind9 bind9-dnsutils  # DNS-01: an authoritative BIND the tests start, dig to read it back, nsupdate for the hook tests
  python3-certbot-dns-rfc2136  # certbot's rfc2136 plugin: the oracle for DNS-01 lineages in certbot's terms
  redis-server      # the Redis storage backend: the storage contract suite and the fleet tests start a real one (also with requirepass and TLS)
  chromium          # the status page's tests drive a real headless browser (playwright-core, no downloaded browser)
)
if [[ "${1:-}" == "bench" ]]; then
  packages+=(nginx-light caddy wrk nghttp2-client)  # upstream + reference proxies + load generators
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-system-deps: already installed: ${packages[*]}"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    echo "install-system-deps: installing ${missing[*]} needs root: running again through sudo" >&2
    exec sudo -- "$0" "$@"
  fi
  echo "install-system-deps: ${missing[*]} missing, and installing them needs root: run this as root (there is no sudo here)" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages enable their services; the benchmark starts its own instances.
if [[ "${1:-}" == "bench" ]] && command -v systemctl >/dev/null; then
  systemctl disable --now nginx caddy >/dev/null 2>&1 || true
fi
echo "install-system-deps: installed ${missing[*]}"
