#!/bin/sh
# The linker `make hot-functions` gives rustc: keeps a copy of each release function's object
# (fat LTO's one object of the whole program) in $LINK_CAPTURE_DIR, for bench/link_order.py,
# then links as the build would have, with the linker cargo-lambda chose for the target
# (Cargo's `CARGO_TARGET_<TRIPLE>_LINKER`, which rustc's `-C linker` from RUSTFLAGS overrides).
set -eu
output=""
previous=""
for argument in "$@"; do
    if [ "$previous" = "-o" ]; then output=$argument; fi
    previous=$argument
done
if [ -n "${LINK_CAPTURE_DIR:-}" ] && [ -n "$output" ]; then
    directory="$LINK_CAPTURE_DIR/$(basename "$output" | sed 's/-[0-9a-f]*$//')"
    rm -rf "$directory"
    mkdir -p "$directory"
    for argument in "$@"; do
        case "$argument" in
            *.rcgu.o) cp "$argument" "$directory/" ;;
        esac
    done
fi
linker=$(env | sed -n 's/^CARGO_TARGET_[A-Z0-9_]*_LINKER=//p' | head -n 1)
if [ -z "$linker" ]; then
    echo "capture_link.sh: no CARGO_TARGET_<TRIPLE>_LINKER to link with (run through cargo lambda build)" >&2
    exit 1
fi
exec "$linker" "$@"
