#!/usr/bin/env bash
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.
#
# `make image-check`: build the three images from the unchanged Dockerfiles with
# buildah (no Docker engine, no registry), on a locally bootstrapped stand-in for
# python:3.11-slim (Debian 12 minbase with its python3.11) and for the uv image
# (the uv binary from PyPI), then run each image's start-up command and smoke
# requests inside it with `buildah run`:
#   symbols   Dockerflow, create a token with the admin CLI, upload a zip, download it
#   eliot     Dockerflow, symbolicate a frame of that upload (through symbols)
#   collector Dockerflow, submit a crash, read it back from the container's disk
# Needs root, buildah, debootstrap (apt-get install buildah debootstrap) and the
# network to Debian's mirror and PyPI. Not part of `make test`: it downloads a
# base system and takes several minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${IMAGE_CHECK_DIR:-$ROOT/var/image-check}
MIRROR=${IMAGE_CHECK_MIRROR:-http://deb.debian.org/debian}
UV_VERSION=$(sed -n 's|^COPY --from=ghcr.io/astral-sh/uv:\([0-9.]*\) .*|\1|p' "$ROOT/docker/Dockerfile.symbols")
CA=${IMAGE_CHECK_CA:-/etc/ssl/certs/ca-certificates.crt}
B=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
PY=$ROOT/.venv/bin/python

say() { printf '\n== %s\n' "$*"; }
for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null || { echo "image-check needs $tool: apt-get install buildah debootstrap"; exit 2; }
done
mkdir -p "$WORK"

base_image() {
    if "${B[@]}" inspect --type image docker.io/library/python:3.11-slim >/dev/null 2>&1; then
        return
    fi
    say "bootstrapping a Debian 12 stand-in for python:3.11-slim"
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log"
    ln -sf python3 "$WORK/rootfs/usr/bin/python"
    # This workplace's network may re-sign TLS: the stand-in trusts the host's CAs.
    cp "$CA" "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$WORK/rootfs/var/cache/apt/archives"/*.deb "$WORK/rootfs/var/lib/apt/lists"/*
    local ctr
    ctr=$("${B[@]}" from scratch)
    "${B[@]}" copy "$ctr" "$WORK/rootfs" / >/dev/null
    "${B[@]}" config --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        --env UV_NATIVE_TLS=1 --cmd python3 "$ctr"
    "${B[@]}" commit -q "$ctr" docker.io/library/python:3.11-slim >/dev/null
    "${B[@]}" rm "$ctr" >/dev/null
}

uv_image() {
    if "${B[@]}" inspect --type image "ghcr.io/astral-sh/uv:$UV_VERSION" >/dev/null 2>&1; then
        return
    fi
    say "uv $UV_VERSION from PyPI as ghcr.io/astral-sh/uv:$UV_VERSION"
    rm -rf "$WORK/uv" && mkdir -p "$WORK/uv"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$WORK/uv" "uv==$UV_VERSION" 2>/dev/null \
        || "$ROOT/.tools/bin/pip" download --quiet --no-deps --only-binary=:all: -d "$WORK/uv" "uv==$UV_VERSION"
    (cd "$WORK/uv" && "$PY" -m zipfile -e uv-*.whl unpacked)
    local uv_bin
    uv_bin=$(find "$WORK/uv/unpacked" -path '*/scripts/uv' | head -1)
    chmod 755 "$uv_bin"  # zipfile drops the mode bits
    local ctr
    ctr=$("${B[@]}" from scratch)
    "${B[@]}" copy --chmod 755 "$ctr" "$uv_bin" /uv >/dev/null
    "${B[@]}" commit -q "$ctr" "ghcr.io/astral-sh/uv:$UV_VERSION" >/dev/null
    "${B[@]}" rm "$ctr" >/dev/null
}

build() {
    local svc=$1 start=$SECONDS
    say "building tecken-$svc from docker/Dockerfile.$svc"
    "${B[@]}" bud --isolation chroot --pull=never --layers -q --format docker \
        --build-arg VERSION=image-check --build-arg COMMIT="$(git -C "$SRC" rev-parse HEAD)" \
        -f "$SRC/docker/Dockerfile.$svc" -t "tecken-$svc" "$SRC" >/dev/null
    echo "built tecken-$svc in $((SECONDS - start)) s"
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Run the image's own CMD (read from the image) inside a working container, in
# the background, with extra environment; echo the container id.
start_image() {
    local svc=$1; shift
    local ctr cmd
    ctr=$("${B[@]}" from --pull=never "tecken-$svc")
    cmd=$("${B[@]}" inspect --type image "tecken-$svc" | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"]["Cmd"]))')
    local args=()
    for kv in "$@"; do args+=(--env "$kv"); done
    # shellcheck disable=SC2046
    eval "set -- $("$PY" -c 'import json,shlex,sys; print(" ".join(shlex.quote(a) for a in json.loads(sys.argv[1])))' "$cmd")"
    "${B[@]}" run --isolation chroot --user 10001:10001 "${args[@]}" "$ctr" -- "$@" \
        >"$WORK/$svc.log" 2>&1 &
    echo "$ctr"
}

wait_up() {
    local url=$1
    for _ in $(seq 120); do
        if "$PY" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; then
            return 0
        fi
        sleep 1
    done
    echo "no answer from $url"; return 1
}

in_image() { local ctr=$1; shift; "${B[@]}" run --isolation chroot --user 10001:10001 "$ctr" -- "$@"; }

cd "$ROOT"
make -s setup
base_image
uv_image
# The images are built from the committed HEAD (a clean clone), as CI would.
SRC=$WORK/src
rm -rf "$SRC" && git clone -q "$ROOT" "$SRC"
for svc in symbols eliot collector; do build "$svc"; done

SP=$(free_port); EP=$(free_port); CP=$(free_port)
cleanup() {
    # The images' processes run as uid 10001 from /app inside the chroots.
    pkill -u 10001 -f "/app/.venv/bin/" 2>/dev/null || true
    pkill -f -- "--root $WORK/storage" 2>/dev/null || true
    sleep 1
    "${B[@]}" rm --all >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "starting the three images (symbols :$SP, eliot :$EP, collector :$CP)"
SYM=$(start_image symbols "SYMBOLS_GUNICORN_BIND=127.0.0.1:$SP" "SYMBOLS_PUBLIC_URL=http://127.0.0.1:$SP")
ELI=$(start_image eliot "ELIOT_GUNICORN_BIND=127.0.0.1:$EP" "ELIOT_SYMBOL_URLS=http://127.0.0.1:$SP/")
COL=$(start_image collector "COLLECTOR_GUNICORN_BIND=127.0.0.1:$CP" "COLLECTOR_THROTTLER_RULES=accept_all")
for port in $SP $EP $CP; do wait_up "http://127.0.0.1:$port/__lbheartbeat__"; done

RESULT=0
check() { if "$@"; then echo "ok: $*" | cut -c1-120; else echo "FAILED: $*" | cut -c1-160; RESULT=1; fi; }
for port in $SP $EP $CP; do
    check "$PY" -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" "http://127.0.0.1:$port/__heartbeat__"
    check "$PY" -c "import json,sys,urllib.request; d=json.load(urllib.request.urlopen(sys.argv[1])); sys.exit(set(d) != {'source','version','commit','build'} or d['version'] != 'image-check')" "http://127.0.0.1:$port/__version__"
done

say "symbols: admin CLI in the image, upload, download"
in_image "$SYM" tecken-symbols-admin create-user ci@example.com --group Uploaders >/dev/null
TOKEN=$(in_image "$SYM" tecken-symbols-admin create-token ci@example.com --notes image-check | tail -1)
SYMDIR=$WORK/symdir && rm -rf "$SYMDIR" && mkdir -p "$SYMDIR"
"$PY" - "$SYMDIR" <<'EOF'
import sys, pathlib
root = pathlib.Path(sys.argv[1]) / "imagecheck.pdb" / "0123456789ABCDEF0123456789ABCDEF1"
root.mkdir(parents=True)
(root / "imagecheck.sym").write_text(
    "MODULE windows x86_64 0123456789ABCDEF0123456789ABCDEF1 imagecheck.pdb\n"
    "FILE 0 c:/src/imagecheck.cpp\n"
    "FUNC 1000 20 0 image_check_function()\n"
    "1000 20 42 0\n"
)
EOF
check env TECKEN_AUTH_TOKEN="$TOKEN" .venv/bin/tecken-upload-symbols --url "http://127.0.0.1:$SP" "$SYMDIR"
check "$PY" -c "import gzip,sys,urllib.request; r=urllib.request.urlopen(sys.argv[1]); b=r.read(); b=gzip.decompress(b) if r.headers.get('Content-Encoding')=='gzip' else b; sys.exit(b'image_check_function' not in b)" \
    "http://127.0.0.1:$SP/imagecheck.pdb/0123456789ABCDEF0123456789ABCDEF1/imagecheck.sym"

say "eliot: symbolicate through the symbols image"
check "$PY" - "http://127.0.0.1:$EP/symbolicate/v5" <<'EOF'
import json, sys, urllib.request
body = json.dumps({"jobs": [{"memoryMap": [["imagecheck.pdb", "0123456789ABCDEF0123456789ABCDEF1"]],
                             "stacks": [[[0, 0x1004]]]}]}).encode()
req = urllib.request.Request(sys.argv[1], body, {"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(req, timeout=30))
frame = answer["results"][0]["stacks"][0][0]
print(frame.get("function"), frame.get("line"))
sys.exit(frame.get("function") != "image_check_function()")
EOF

say "collector: submit a crash, read it back inside the image"
printf 'MDMP-image-check' > "$WORK/dump.dmp"
echo '{"ProductName": "ImageCheck", "Version": "1.0"}' > "$WORK/annotations.json"
CRASH=$(.venv/bin/tecken-submit-crash "http://127.0.0.1:$CP" --annotations "$WORK/annotations.json" \
    --dump "$WORK/dump.dmp" --gzip 2>&1 | tail -1 || true)
echo "$CRASH"
ID=${CRASH#CrashID=bp-}
check test -n "$ID"
check in_image "$COL" sh -c "grep -rl ImageCheck /app/var/collector/crashes | grep -q '$ID'"

say "image-check: $([ $RESULT = 0 ] && echo passed || echo FAILED) (logs in $WORK/*.log)"
exit $RESULT
