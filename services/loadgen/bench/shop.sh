# Sourced by the bench scripts: the builds to compare, a scratch folder,
# and starting and stopping a fresh `ordershop local`.

# bench_setup [OTHER_BUILD_DIR]
# Sets $bin (this build's release binaries), $work (removed on exit) and
# $builds ("this:DIR" and, given another build, "other:DIR").
bench_setup() {
  bin="${CARGO_TARGET_DIR:-target}/release"
  work="$(mktemp -d)"
  # Redis may still be closing its files when the shop has exited.
  # A failed step must not leave a shop running.
  trap '[ -n "${shop:-}" ] && kill -TERM "$shop" 2>/dev/null && wait "$shop"; rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; }' EXIT
  builds=("this:$bin")
  if [ -n "${1:-}" ]; then builds+=("other:$1"); fi
}

# start_shop BINARY DATA_DIR [ordershop local options...]
# Starts the shop in DATA_DIR (its log beside it, DATA_DIR.log) on free
# ports; sets $shop (its pid) and $url (its HTTP API) once it answers.
start_shop() {
  local binary="$1" data="$2"
  shift 2
  # A data dir used before holds the last run's addresses.
  rm -f "$data/run/http.addr"
  "$binary" local --data-dir "$data" --base-port 0 --http-listen 127.0.0.1:0 "$@" \
    >"$data.log" 2>&1 &
  shop=$!
  for _ in $(seq 1 600); do [ -f "$data/run/http.addr" ] && break; sleep 0.1; done
  [ -f "$data/run/http.addr" ] || { cat "$data.log"; echo "the shop did not start" >&2; exit 1; }
  url="http://$(cat "$data/run/http.addr")"
}

# stop_shop: SIGTERM, then wait for every role and Redis to stop.
stop_shop() {
  kill -TERM "$shop"
  wait "$shop" || true
  shop=
}
