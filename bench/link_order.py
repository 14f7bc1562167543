"""The order each release function's code is laid out in at the link, for its zip: written as
functions/release-link/order/<arch>/<package>.txt, which functions/release-link/build.rs reads.

    python bench/link_order.py --objects DIR --arch x86_64 [--ran DIR] [--output DIR]

DIR holds each function's object as `make hot-functions` keeps them (bench/capture_link.sh:
DIR/autoheal_<layer>/*.o, fat LTO's one object of the whole program). Each is linked on its
own by the linker the build uses (zig's ld.lld) with the release layout's hot and rest parts
(the hot part from functions/release-link/hot-functions.txt, as build.rs writes it) and
`--bp-compression-sort=function`: balanced partitioning, which orders the sections of each
part so that like code sits within deflate's window. The order it chose is read back from
the linked file's symbols and written one section per line: a legacy-mangled Rust symbol by
its hash (`17h<hash>E`, a dot after it for fat LTO's numbered copies), any other whole;
of the hot part, only the functions the function's own profile ran, where it is given
(`--ran`, from bench/hot_functions.py; by name, without hashes, for another architecture's
code: `--ran-by-name`). The build's own link cannot ask for the sort (the compiler driver
it links through passes no such flag on), so the order is given to it in the linker script
instead.

Needs binutils' readelf and nm, and the project's .venv (ziglang: `make lambda-tools`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
RELEASE_LINK = REPOSITORY / "functions" / "release-link"
EMULATION = {"x86_64": "elf_x86_64", "arm64": "aarch64linux"}
# A legacy-mangled Rust symbol ends with its hash (`17h`, 16 hexadecimal digits, `E`), and
# a local copy fat LTO made with a number after a dot.
LEGACY = re.compile(r"^_ZN.*(17h[0-9a-f]{16}E)(\.[0-9]+)?$")
NUMBERED = re.compile(r"^(.*\.)[0-9]+$")
# What a section name in a linker script may be made of here (build.rs leaves out the rest).
PLAIN = re.compile(r"^[A-Za-z0-9_.$]+$")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=Path, required=True, help="the kept objects (DIR/autoheal_<layer>/*.o)")
    parser.add_argument("--arch", choices=sorted(EMULATION), required=True, help="the objects' architecture")
    parser.add_argument("--output", type=Path, help="where the lists go (default: functions/release-link/order/ARCH)")
    parser.add_argument("--ran", type=Path, help="each layer's functions that ran in its profile (DIR/autoheal-<layer>.txt: bench/hot_functions.py --ran)")
    parser.add_argument("--ran-by-name", action="store_true", help="match --ran by name without hashes (a profile of another architecture, whose symbols' hashes differ)")
    parser.add_argument("--python", default=sys.executable, help="the Python with ziglang (default: this one)")
    return parser.parse_args()


def hot_patterns(hot_functions: Path) -> list[str]:
    """The hot part's section patterns, as build.rs writes them from the same list."""
    patterns = []
    for name in (line.strip() for line in hot_functions.read_text().splitlines()):
        if not name or name.startswith("#") or not PLAIN.match(name):
            continue
        wildcard = "*" if (name.startswith("_ZN") and name.endswith("17h")) or name.endswith(".") else ""
        patterns += [f".text.{name}{wildcard}", f".text.unlikely.{name}{wildcard}"]
    return patterns


def sorting_script(patterns: list[str]) -> str:
    """The release layout without its sort by name and without `INSERT` (the object is linked
    alone, with no `.text` of its own to insert before)."""
    hot = "".join(f"      {pattern}\n" for pattern in patterns)
    return (
        "SECTIONS\n{\n"
        f"  .text.hot :\n  {{\n    *(\n{hot}    )\n  }}\n"
        "  .text.rest : { *(.text.*) }\n"
        "  .text : { *(.text) }\n"
        "  /DISCARD/ : { *(.eh_frame) *(.gcc_except_table .gcc_except_table.*) }\n"
        "}\n"
    )


def section_ranges(linked: Path) -> dict[str, tuple[int, int]]:
    ranges = {}
    listing = subprocess.run(["readelf", "-SW", str(linked)], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        match = re.search(r"\]\s+(\.text\.hot|\.text\.rest)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", line)
        if match:
            start = int(match.group(2), 16)
            ranges[match.group(1)] = (start, start + int(match.group(3), 16))
    return ranges


def object_sections(objects: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in objects:
        listing = subprocess.run(["readelf", "-SW", str(path)], capture_output=True, text=True, check=True).stdout
        names.update(re.findall(r"\]\s+(\.text\.\S+)\s", listing))
    return names


def unhashed(symbol: str) -> str:
    """A symbol without its hash and its copy's number: the same function on every
    architecture (and every instance of a generic one)."""
    legacy = LEGACY.match(symbol)
    if legacy:
        return symbol[: legacy.start(1)]
    numbered = NUMBERED.match(symbol)
    return numbered.group(1) if numbered else symbol


def line_for(symbol: str) -> str:
    """A section's line in the list: a legacy symbol by its hash, any other whole; a
    numbered copy with a dot for its number."""
    legacy = LEGACY.match(symbol)
    if legacy:
        return legacy.group(1) + ("." if legacy.group(2) else "")
    numbered = NUMBERED.match(symbol)
    return numbered.group(1) if numbered else symbol


def ordered_lines(linked: Path, sections: set[str], ran: set[str] | None, by_name: bool) -> dict[str, list[str]]:
    """Each part's sections in the order the linker laid them out, as list lines. Where the
    function's profile is known (`ran`), the hot part lists only what ran in it: the rest of
    the hot list (what only another layer, or only a later event, ran) then follows in the
    hot part sorted by name, together, and a start-up touches the pages of the functions it
    runs, not pages that the sort interleaved with those it does not (0.1-0.3 MiB of peak RSS
    with the whole hot part in the linker's order)."""
    ranges = section_ranges(linked)
    if set(ranges) != {".text.hot", ".text.rest"}:
        raise SystemExit(f"{linked}: no hot and rest parts in the linked file")
    symbols = subprocess.run(["nm", "-n", str(linked)], capture_output=True, text=True, check=True).stdout
    parts: dict[str, list[str]] = {part: [] for part in ranges}
    seen: set[str] = set()
    for fields in (line.split() for line in symbols.splitlines()):
        if len(fields) != 3 or fields[1] not in "tTwW":
            continue
        address, symbol = int(fields[0], 16), fields[2]
        part = next((name for name, (start, end) in ranges.items() if start <= address < end), None)
        if part is None or not PLAIN.match(symbol):
            continue
        # A symbol that is not the name of its own section (an alias) says nothing of order.
        if f".text.{symbol}" not in sections and f".text.unlikely.{symbol}" not in sections:
            continue
        if part == ".text.hot" and ran is not None and (unhashed(symbol) if by_name else symbol) not in ran:
            continue
        line = line_for(symbol)
        if line not in seen:
            seen.add(line)
            parts[part].append(line)
    return parts


def main() -> None:
    args = parse_args()
    output = args.output or RELEASE_LINK / "order" / args.arch
    output.mkdir(parents=True, exist_ok=True)
    captured = sorted(path for path in args.objects.iterdir() if path.is_dir() and path.name.startswith("autoheal_"))
    if not captured:
        sys.exit(f"{args.objects}: no kept objects (make hot-functions keeps them)")
    script_text = sorting_script(hot_patterns(RELEASE_LINK / "hot-functions.txt"))
    with tempfile.TemporaryDirectory(prefix="link-order-") as scratch:
        script = Path(scratch) / "sorting.ld"
        script.write_text(script_text)
        for directory in captured:
            objects = sorted(directory.glob("*.o"))
            package = directory.name.replace("_", "-")
            linked = Path(scratch) / package
            # Linked alone: what libc and the runtime would give stays unresolved, and only
            # the order of the program's own sections is read back.
            subprocess.run(
                [args.python, "-m", "ziglang", "ld.lld", "-m", EMULATION[args.arch], "-o", str(linked),
                 "-T", str(script), "--gc-sections", "-e", "main", "--unresolved-symbols=ignore-all",
                 "--bp-compression-sort=function", *map(str, objects)],
                check=True,
            )
            profile = args.ran / f"{package}.txt" if args.ran else None
            ran = set(profile.read_text().split()) if profile and profile.is_file() else None
            if ran is not None and args.ran_by_name:
                ran = {unhashed(symbol) for symbol in ran}
            parts = ordered_lines(linked, object_sections(objects), ran, args.ran_by_name)
            header = [
                f"# The order of {package}'s code at the link on {args.arch}, as the linker's balanced",
                "# partitioning for compression chose it. Written by bench/link_order.py (make",
                "# hot-functions): do not edit by hand. Read by functions/release-link/build.rs.",
            ]
            text = "\n".join(header + ["[hot]", *parts[".text.hot"], "[rest]", *parts[".text.rest"]]) + "\n"
            (output / f"{package}.txt").write_text(text)
            print(f"{package}: {len(parts['.text.hot'])} hot and {len(parts['.text.rest'])} other sections", flush=True)


if __name__ == "__main__":
    main()
