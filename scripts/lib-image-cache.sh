# Sourced by the image builders (build-base-image.sh, build-proxy-base.sh), which define
# log, current (is $tag up to date?), $tag and $cache_dir.
#
# present_or_lock LOCKFILE: exit 0 when $tag is current; otherwise take the cache
# directory's lock LOCKFILE (held until the builder exits) and check again, so one build
# runs at a time per cache directory and whoever waited finds the image afterwards.
present_or_lock() {
  if current; then
    log "$tag is present"
    exit 0
  fi
  mkdir -p "$cache_dir"
  exec 9>"$cache_dir/$1"
  if ! flock -n 9; then
    log "another build is running; waiting for it"
    flock 9
  fi
  if current; then
    log "$tag is present"
    exit 0
  fi
}
