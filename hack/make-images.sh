#!/usr/bin/env bash
# make-images.sh - the test images of capsa-image's tests and benchmark, built locally with
# no container registry (Debian's package mirror is the only network used).
#
# Usage (as root):  bash hack/make-images.sh [OUTDIR]
#   OUTDIR default: $CAPSA_TEST_IMAGES, else $CAPSA_CACHE/images
#   (CAPSA_CACHE default /var/tmp/capsa-cache)
#
# Images (in a private buildah store under OUTDIR/.work, never /var/lib/containers):
#   localhost/test-busybox:latest   1 layer: busybox-static, a symlink per applet,
#                                   /etc/passwd and group, /var/www/index.html
#   localhost/test-debian:bookworm  1 layer: debootstrap --variant=minbase
#   localhost/test-nginx:bookworm   2 layers: test-debian + one layer from a Dockerfile that
#                                   installs nginx-light, copies two files, deletes
#                                   /etc/issue.net (whiteout .wh.issue.net) and replaces
#                                   /etc/skel (opaque dir .wh..wh..opq)
#   localhost/test-rich:bookworm    4 layers: test-debian + Debian packages rich in links,
#                                   file capabilities and setuid files (iputils-ping with
#                                   cap_net_raw, passwd's setuid tools, python3, perl's
#                                   hardlinks), then absolute symlinks, owners above 65535,
#                                   a whiteout and an opaque dir (the differential test)
# Written for each NAME:TAG:
#   OUTDIR/NAME/                OCI image layout, ref name TAG
#   OUTDIR/NAME-TAG.docker.tar  docker-archive, RepoTags localhost/NAME:TAG
#   OUTDIR/NAME-TAG.oci.tar     oci-archive, ref name localhost/NAME:TAG
#   OUTDIR/bundles/NAME-TAG/    runtime bundle unpacked by `umoci unpack` (the reference)
#   OUTDIR/images.json          what was built (written last: its presence means complete)
#
# Environment: FORCE=1 rebuilds everything (default: reuse the images in the private store
# and the debootstrap tarball); DEBIAN_MIRROR (default: the first Debian URI of the host's
# apt sources). Two runs on one OUTDIR take turns (flock).
set -euo pipefail
HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CAPSA_CACHE:-/var/tmp/capsa-cache}
OUT=$(realpath -m "${1:-${CAPSA_TEST_IMAGES:-$CACHE/images}}")
WORK=$OUT/.work
SUITE=bookworm
FORCE=${FORCE:-0}
log() { printf '[make-images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

bash "$HACK/apt-need.sh" make-images busybox-static debootstrap debian-archive-keyring buildah \
  umoci jq runc uidmap tar gzip
BUSYBOX=/bin/busybox
{ ldd "$BUSYBOX" 2>&1 || true; } | grep -q 'not a dynamic' || die "$BUSYBOX is not static"

if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR=$(
    { grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{for(i=2;i<=NF;i++) print $i}'
      grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -E 's/\[[^]]*\]//' | awk '{print $2}'
    } 2>/dev/null | grep -E '/debian/?$' | head -n1 || true)
  DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
fi

mkdir -p "$OUT" "$WORK"/{storage,run,tmp,networks}
exec 9>"$OUT/.lock"
flock 9
REFS=(test-busybox:latest test-debian:$SUITE test-nginx:$SUITE test-rich:$SUITE)
# complete when images.json lists every image (a cache from before an image was added is not)
if [ "$FORCE" != 1 ] && [ -f "$OUT/images.json" ] &&
   [ "$(jq length "$OUT/images.json")" = "${#REFS[@]}" ]; then
  log "already built: $OUT"; exit 0
fi
rm -f "$OUT/images.json"

# ---------------------------------------------------------------- private buildah config
DRIVER=overlay
[ "$(findmnt -no FSTYPE --target "$WORK" 2>/dev/null)" = overlay ] && DRIVER=vfs
cat > "$WORK/storage.conf" <<EOF
[storage]
driver = "$DRIVER"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF
cat > "$WORK/containers.conf" <<EOF
[network]
network_config_dir = "$WORK/networks"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$WORK/policy.json"
export CONTAINERS_STORAGE_CONF=$WORK/storage.conf CONTAINERS_CONF=$WORK/containers.conf
export TMPDIR=$WORK/tmp BUILDAH_RUNTIME=runc BUILDAH_ISOLATION=oci
BA=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver "$DRIVER"
    --cgroup-manager cgroupfs)
have_image() { [ "$FORCE" != 1 ] && "${BA[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# a rootfs tarball as a one-layer image
import_rootfs() { # TAR REF CMD...
  local tar=$1 ref=$2 c; shift 2
  "${BA[@]}" rmi -f "$ref" >/dev/null 2>&1 || true
  c=$("${BA[@]}" from --pull=never scratch)
  "${BA[@]}" add "$c" "$tar" / >/dev/null
  "${BA[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --workingdir / --cmd "$(printf '%s\n' "$@" | jq -R . | jq -sc .)" "$c"
  "${BA[@]}" commit --rm "$c" "$ref" >/dev/null
  log "built $ref"
}

# ---------------------------------------------------------------- busybox
if ! have_image localhost/test-busybox:latest; then
  R=$WORK/busybox-rootfs; rm -rf "$R"
  mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,root,tmp,var/www,run}
  chmod 1777 "$R/tmp"; chmod 700 "$R/root"
  cp "$BUSYBOX" "$R/bin/busybox"
  for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$R/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$R/etc/group"
  echo 'hello from test-busybox' > "$R/var/www/index.html"
  tar --numeric-owner --owner=0 --group=0 -C "$R" -cf "$WORK/busybox-rootfs.tar" .
  rm -rf "$R"
  import_rootfs "$WORK/busybox-rootfs.tar" localhost/test-busybox:latest /bin/sh
fi

# ---------------------------------------------------------------- debian (debootstrap)
if ! have_image localhost/test-debian:$SUITE; then
  DT=$WORK/debian-$SUITE-rootfs.tar
  if [ "$FORCE" = 1 ] || [ ! -s "$DT" ]; then
    R=$WORK/debian-rootfs; rm -rf "$R"
    log "debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR (a few minutes)"
    debootstrap --variant=minbase "$SUITE" "$R" "$DEBIAN_MIRROR" > "$WORK/debootstrap.log" 2>&1 ||
      { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
    # as in the official images: no .debs, no apt lists, an empty /dev
    rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R"/dev/* "$R"/var/log/bootstrap.log
    tar --numeric-owner --xattrs --xattrs-include='*' -C "$R" -cf "$DT.tmp" . && mv "$DT.tmp" "$DT"
    rm -rf "$R"
  fi
  import_rootfs "$DT" localhost/test-debian:$SUITE bash
fi

# ---------------------------------------------------------------- nginx: one layer on debian
if ! have_image localhost/test-nginx:$SUITE; then
  CTX=$WORK/nginx-ctx; rm -rf "$CTX"; mkdir -p "$CTX"
  echo 'hello from test-nginx' > "$CTX/index.html"
  echo 'added by the top layer of test-nginx' > "$CTX/marker.txt"
  cat > "$CTX/Dockerfile" <<EOF
FROM localhost/test-debian:$SUITE
RUN set -eux; \\
    apt-get update; \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light; \\
    apt-get clean; rm -rf /var/lib/apt/lists/*; \\
    rm -f /etc/issue.net; \\
    rm -rf /etc/skel && mkdir /etc/skel && echo replaced > /etc/skel/README
COPY index.html /var/www/html/index.html
COPY marker.txt /etc/test-image-marker
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
  log "buildah bud test-nginx (RUN through runc, host network for apt)"
  # --layers=false: the whole Dockerfile is one layer on top of test-debian
  "${BA[@]}" bud --pull=never --layers=false --network host --runtime runc --isolation oci \
    -t localhost/test-nginx:$SUITE "$CTX" >&2
fi

# ---------------------------------------------------------------- rich: packages on debian
if ! have_image localhost/test-rich:$SUITE; then
  CTX=$WORK/rich-ctx; rm -rf "$CTX"; mkdir -p "$CTX"
  cat > "$CTX/Dockerfile" <<EOF
FROM localhost/test-debian:$SUITE
ENV DEBIAN_FRONTEND=noninteractive
# libcap2-bin first: iputils-ping's postinst sets cap_net_raw with setcap when it is there
RUN set -eux; apt-get update; \
    apt-get install -y --no-install-recommends libcap2-bin; \
    apt-get install -y --no-install-recommends iputils-ping passwd; \
    getcap /bin/ping | grep -q cap_net_raw; \
    apt-get clean; rm -rf /var/lib/apt/lists/*
RUN set -eux; apt-get update; \
    apt-get install -y --no-install-recommends python3 perl; \
    apt-get clean; rm -rf /var/lib/apt/lists/*
RUN set -eux; \
    mkdir -p /opt/tool/bin; echo '#!/bin/sh' > /opt/tool/bin/t; chmod 755 /opt/tool/bin/t; \
    ln -s /opt/tool /usr/local/tool; ln -s /usr/bin/python3 /usr/local/bin/py; \
    install -d -o 70000 -g 70000 -m 2750 /srv/big; echo big > /srv/big/f; chown 70000:4000000 /srv/big/f; \
    rm -rf /usr/share/doc/perl; rm -f /etc/motd; \
    rm -rf /etc/skel && mkdir /etc/skel && echo replaced > /etc/skel/README
CMD ["python3"]
EOF
  log "buildah bud test-rich (RUN through runc, host network for apt)"
  "${BA[@]}" bud --pull=never --layers=true --network host --runtime runc --isolation oci \
    -t localhost/test-rich:$SUITE "$CTX" >&2
fi

# ---------------------------------------------------------------- export
PUSH=("${BA[@]}" push --signature-policy "$WORK/policy.json" --quiet)
json=()
for ref in "${REFS[@]}"; do
  name=${ref%%:*} tag=${ref##*:}
  log "export $ref"
  rm -rf "${OUT:?}/$name" "$OUT/$name-$tag.docker.tar" "$OUT/$name-$tag.oci.tar" "$OUT/bundles/$name-$tag"
  "${PUSH[@]}" "localhost/$ref" "oci:$OUT/$name:$tag" >/dev/null
  "${PUSH[@]}" "localhost/$ref" "docker-archive:$OUT/$name-$tag.docker.tar:localhost/$ref" >/dev/null
  "${PUSH[@]}" "localhost/$ref" "oci-archive:$OUT/$name-$tag.oci.tar:localhost/$ref" >/dev/null
  mkdir -p "$OUT/bundles"
  umoci unpack --image "$OUT/$name:$tag" "$OUT/bundles/$name-$tag" >/dev/null
  man=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)
        | .digest' "$OUT/$name/index.json")
  man=$OUT/$name/blobs/${man/://}
  top=$(jq -r '.layers[-1].digest' "$man")
  json+=("$(jq -c --arg ref "localhost/$ref" --arg wh "$(tar -tzf "$OUT/$name/blobs/${top/://}" |
            grep -E '(^|/)\.wh\.' || true)" \
    '{ref: $ref, layers: (.layers | length), top_layer_whiteouts: ($wh | split("\n") | map(select(length > 0)))}' "$man")")
done
printf '%s\n' "${json[@]}" | jq -s . > "$OUT/images.json.tmp"
mv "$OUT/images.json.tmp" "$OUT/images.json"
jq -c '.[]' "$OUT/images.json" >&2
log "done: $OUT"
