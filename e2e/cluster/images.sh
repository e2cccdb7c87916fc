# e2e/cluster/images.sh — OCI images assembled on this machine, without a
# container engine, and imported into the node's containerd. Sourced by
# e2e/cluster.sh after node.sh.
#
# buildah (Debian) commits each image from a root filesystem prepared here:
#   localhost/pause:dev              pod sandbox: busybox `sleep`
#   localhost/busybox:dev            local-path-provisioner's helper pods
#   localhost/ordershop:dev          every OrderShop role  ┐ same user, entrypoint
#   localhost/ordershop-operator:dev the operator          ┘ and ports as
#                                                            deploy/images/Dockerfile
#   localhost/redis:dev              Debian's redis-server, with the official
#                                    image's contract (arguments starting with
#                                    `-` are given to redis-server; sh and
#                                    redis-cli for the readiness probe)
#
# The Dockerfile builds static musl binaries; no musl target can be installed
# here, so these images carry the release binaries' shared libraries (`ldd`)
# instead. Everything else matches its final stages: user 65532:65532, the
# entrypoint and default arguments, no shell in the OrderShop images, and a
# root filesystem that works read-only.

IMAGE_TAG=dev
BUILDAH_ROOT=${ORDERSHOP_BUILDAH_ROOT:-$CACHE/buildah}

buildah_() {
  buildah --storage-driver vfs --root "$BUILDAH_ROOT/storage" --runroot "$NODE_RUN/buildah" "$@"
}

# copy_binary ROOTFS SRC DEST: SRC installed as DEST, with every shared
# library it loads at the path the loader looks for it.
copy_binary() {
  local rootfs=$1 src=$2 dest=$3 lib
  install -D -m 0755 "$src" "$rootfs$dest"
  # The release profile keeps line tables for profiling; an image has no
  # use for them (a third of the size).
  strip --strip-debug "$rootfs$dest"
  for lib in $(ldd "$src" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}'); do
    # 0755: the kernel executes the ELF interpreter (ld-linux) as the
    # image's user, which needs the execute bit.
    [[ -e $rootfs$lib ]] || install -D -m 0755 "$(realpath "$lib")" "$rootfs$lib"
  done
}

# A distroless-like /etc: the nonroot user (65532) and CA certificates.
add_etc() {
  local rootfs=$1
  mkdir -p "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  fi
}

add_busybox() { # ROOTFS: static busybox plus the applets used here
  local rootfs=$1 applet
  install -D -m 0755 "$(command -v busybox)" "$rootfs/bin/busybox"
  for applet in sh sleep mkdir rm grep cat ls; do ln -sf busybox "$rootfs/bin/$applet"; done
}

# commit_image NAME ROOTFS BUILDAH-CONFIG-ARGS...: commit ROOTFS as
# localhost/NAME:dev and import it into the node's containerd.
commit_image() {
  local name=$1 rootfs=$2; shift 2
  local ref=localhost/$name:$IMAGE_TAG archive container
  archive=$BUILDAH_ROOT/$name.oci.tar
  mkdir -p "$BUILDAH_ROOT" "$NODE_RUN/buildah"
  container=$(buildah_ from scratch)
  buildah_ copy --quiet "$container" "$rootfs/" / >/dev/null
  buildah_ config "$@" "$container"
  rm -f "$archive"
  buildah_ commit --quiet --format oci --rm "$container" "oci-archive:$archive:$ref" >/dev/null
  buildah_ rmi --all >/dev/null 2>&1 || true
  ctr_node images import --no-unpack=false "$archive" >/dev/null
  log "images: $ref ($(du -h "$archive" | cut -f1))"
}

# The pod sandbox and the volume helper: the node needs them before any pod.
node_base_images() {
  if ctr_node images ls -q | grep -qx "$PAUSE_IMAGE" && ctr_node images ls -q | grep -qx "$BUSYBOX_IMAGE"; then
    return 0
  fi
  local work
  work=$(mktemp -d)
  add_busybox "$work/busybox"
  add_etc "$work/busybox"
  commit_image busybox "$work/busybox" --cmd '["/bin/sh"]'
  # The sandbox only holds the pod's namespaces; containerd stops it with
  # SIGKILL.
  mkdir -p "$work/pause/bin"
  install -m 0755 "$(command -v busybox)" "$work/pause/bin/busybox"
  commit_image pause "$work/pause" --user 65535:65535 \
    --entrypoint '["/bin/busybox", "sleep", "2147483647"]'
  rm -rf "$work"
}

# The OrderShop images, from release builds of this checkout.
cmd_images() {
  node_require_tools
  [[ -S $CONTAINERD_SOCK ]] || die "the node is not running: run e2e/cluster.sh up first"
  local root t0=$SECONDS work target
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  log "images: cargo build --release -p ordershop -p ordershop-operator"
  (cd "$root" && cargo build --release --locked -p ordershop --bin ordershop -p ordershop-operator --bin ordershop-operator) ||
    die "release build failed"
  target=${CARGO_TARGET_DIR:-$root/target}
  work=$(mktemp -d)

  copy_binary "$work/ordershop" "$target/release/ordershop" /usr/local/bin/ordershop
  add_etc "$work/ordershop"
  commit_image ordershop "$work/ordershop" --user 65532:65532 \
    --entrypoint '["/usr/local/bin/ordershop"]' --port 50051 --port 5000

  copy_binary "$work/operator" "$target/release/ordershop-operator" /usr/local/bin/ordershop-operator
  add_etc "$work/operator"
  commit_image ordershop-operator "$work/operator" --user 65532:65532 \
    --entrypoint '["/usr/local/bin/ordershop-operator"]' --cmd '["run"]' --port 8080

  # The official image's docker-entrypoint.sh, reduced to what the operator
  # relies on: `redis-server` is prepended to arguments that start with `-`.
  add_busybox "$work/redis"
  add_etc "$work/redis"
  copy_binary "$work/redis" "$(command -v redis-server)" /usr/local/bin/redis-server
  copy_binary "$work/redis" "$(command -v redis-cli)" /usr/local/bin/redis-cli
  cat >"$work/redis/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
case "$1" in -*) set -- redis-server "$@" ;; esac
exec "$@"
EOF
  chmod 0755 "$work/redis/usr/local/bin/docker-entrypoint.sh"
  mkdir -p "$work/redis/data"
  chmod 0777 "$work/redis/data"
  commit_image redis "$work/redis" --user 65532:65532 --workingdir /data \
    --env PATH=/usr/local/bin:/usr/bin:/bin \
    --entrypoint '["/usr/local/bin/docker-entrypoint.sh"]' --cmd '["redis-server"]' --port 6379
  rm -rf "$work"
  log "images: done in $((SECONDS - t0))s"
}
