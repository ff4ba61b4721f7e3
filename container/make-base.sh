#!/usr/bin/env bash
# Make a minimal Debian base image (Python 3.11, venv, CA certificates) from Debian's own packages.
#
# For machines that cannot pull from an image registry (this project's CI): debootstrap the `minbase` variant
# from the mirror apt already uses, then import the root filesystem as a local image. Users with a registry
# build on the official python:3.11-slim instead (container/build.sh's default when MLBATCH_BASE_IMAGE is set).
#
#   bash container/make-base.sh [IMAGE]        # default IMAGE: localhost/mlbatch-base:bookworm
#
# Idempotent: an image that already exists is kept (pass --force to remake it).
set -euo pipefail

force=0
if [[ "${1:-}" == "--force" ]]; then
    force=1
    shift
fi
image="${1:-localhost/mlbatch-base:bookworm}"
suite="${MLBATCH_BASE_SUITE:-bookworm}"

if [[ $force -eq 0 ]] && podman image exists "$image"; then
    echo "base image $image exists; kept"
    exit 0
fi

# The mirror apt's own sources name (deb822 .sources or one-line .list), so this works wherever apt works.
mirror_from_apt() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/ && $i !~ /security/) { print $i; exit } }' "$f"
    done
}
mirror="${MLBATCH_DEBIAN_MIRROR:-$(mirror_from_apt | head -n1)}"
if [[ -z "$mirror" ]]; then
    echo "error: no Debian mirror found in /etc/apt/sources.list* (set MLBATCH_DEBIAN_MIRROR)" >&2
    exit 1
fi

rootfs="$(mktemp -d /var/tmp/mlbatch-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap $suite from $mirror into $rootfs"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$suite" "$rootfs" "$mirror" \
    > "$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

# Nothing the image needs at run time: apt's package lists and caches, documentation, man pages, locales.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*
find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +

tar --numeric-owner -C "$rootfs" -c . | podman import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$image" > /dev/null
echo "base image $image made ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
