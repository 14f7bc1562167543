"""Prints the size of each Lambda artifact and of its zip as `sam package` / `sam deploy` upload
it (zipfile's deflate at its default level, the bootstrap alone), in MB of 10^6 bytes.

    python tools/artifact_sizes.py DIR/autoheal-infrastructure/bootstrap ...
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path


def zipped_size(path: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.create_system = 3
        info.external_attr = 0o100755 << 16
        archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return len(buffer.getvalue())


def main(paths: list[str]) -> int:
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"{'artifact':<40} {'bootstrap MB':>12} {'zip MB':>8}")
    for name in paths:
        path = Path(name)
        print(f"{path.parent.name:<40} {path.stat().st_size / 1e6:>12.2f} {zipped_size(path) / 1e6:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
