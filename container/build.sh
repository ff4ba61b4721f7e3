#!/usr/bin/env bash
# Build the mlbatch image from this checkout, the one documented command (docs/containers.md):
#
#   bash container/build.sh [IMAGE]              # default IMAGE: localhost/mlbatch:VERSION
#
# Environment (all optional):
#   MLBATCH_BASE_IMAGE        base of both stages; default: a Debian bookworm base made from Debian's packages
#                             by container/make-base.sh (no registry needed); users with one: python:3.11-slim
#   MLBATCH_CONTAINER_CACHE   where the wheelhouse is kept between builds (default /var/cache/mlbatch-container)
#   CONTAINER_ENGINE          podman (default) or docker
#
# The wheelhouse is cached outside the clone, keyed by a hash of the lock files and the base, so a fresh clone
# (CI) builds offline from it; the first build fills it from the deps stage's own wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${CONTAINER_ENGINE:-podman}"
cache="${MLBATCH_CONTAINER_CACHE:-/var/cache/mlbatch-container}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)"
image="${1:-localhost/mlbatch:$version}"
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ "$commit" != unknown && -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit="$commit-dirty"
fi

base="${MLBATCH_BASE_IMAGE:-}"
if [[ -z "$base" ]]; then
    base=localhost/mlbatch-base:bookworm
    bash container/make-base.sh "$base"
fi

build_flags=()
if [[ "$engine" == podman ]]; then
    # chroot isolation: this machine's kernel and cgroups setup refuse the default OCI runtime during builds
    build_flags+=(--isolation=chroot)
fi

key="$(cat constraints.txt container/build-constraints.txt <(echo "$base") | sha256sum | cut -c1-16)"
wheels="$cache/wheels-$key"
stage=container/wheelhouse
unstage() { find "$stage" \( -name '*.whl' -o -name .complete \) -delete; }
unstage
trap unstage EXIT
offline=0
if [[ -f "$wheels/.complete" ]]; then
    # hard links when the cache and the clone share a file system (instant), copies otherwise
    cp -l "$wheels"/*.whl "$wheels/.complete" "$stage"/ 2>/dev/null || cp "$wheels"/*.whl "$wheels/.complete" "$stage"/
    offline=1
    echo "wheelhouse: $(find "$stage" -name '*.whl' | wc -l) cached wheels from $wheels (offline build)"
else
    echo "wheelhouse: none cached for key $key; the build stage downloads the locked wheels"
fi

if [[ $offline -eq 0 ]]; then
    # the CA bundle this host's pip trusts, lent to the build stage's downloads as a secret (not in any layer)
    cert="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
    [[ -s "$cert" ]] && build_flags+=(--secret "id=pip-cert,src=$cert")
fi
args=(--build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$version" --build-arg "COMMIT=$commit")
# --label as well as the build arguments: podman reuses a cached LABEL step whose ARG values changed
labels=(--label "org.opencontainers.image.version=$version" --label "org.opencontainers.image.revision=$commit")
"$engine" build "${build_flags[@]}" "${args[@]}" "${labels[@]}" -f Containerfile -t "$image" .

# A tag on the deps stage (cached: no work) keeps its layers, the slow part of a build, out of `image prune`.
deps="localhost/mlbatch-deps:$key"
"$engine" build -q "${build_flags[@]}" "${args[@]}" -f Containerfile --target deps -t "$deps" . > /dev/null
if [[ $offline -eq 0 ]]; then
    # keep the deps stage's wheelhouse for the next build, outside the clone
    mkdir -p "$cache"
    tmp="$(mktemp -d "$cache/.wheels-$key.XXXXXX")"
    ctr="$("$engine" create "$deps")"
    "$engine" cp "$ctr":/wheels/. "$tmp"/
    "$engine" rm "$ctr" > /dev/null
    touch "$tmp/.complete"
    rm -rf "$wheels"
    mv "$tmp" "$wheels"
    echo "wheelhouse: $(find "$wheels" -name '*.whl' | wc -l) wheels cached in $wheels"
fi
echo "built $image ($("$engine" image inspect --format '{{.Size}}' "$image") bytes, commit $commit)"
