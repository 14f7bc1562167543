#!/bin/sh
# The linker `make hot-functions` gives Cargo for the target: keeps a copy of each release
# function's object (fat LTO's one object of the whole program) in $LINK_CAPTURE_DIR, for
# bench/link_order.py, then links as the build would have, with the linker cargo-lambda
# chose for the target $LINK_CAPTURE_TRIPLE (the `CARGO_TARGET_<TRIPLE>_LINKER` it sets,
# which Cargo's `--config target.<triple>.linker` overrides for rustc).
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
variable="CARGO_TARGET_$(printf '%s' "${LINK_CAPTURE_TRIPLE:-}" | tr 'a-z-' 'A-Z_')_LINKER"
linker=$(printenv "$variable" || true)
if [ -z "$linker" ]; then
    echo "capture_link.sh: no $variable to link with (LINK_CAPTURE_TRIPLE names the target; run through cargo lambda build)" >&2
    exit 1
fi
exec "$linker" "$@"
