//! How each function's release `bootstrap` is linked for Lambda's Linux (`sam build`,
//! `make lambda`): the build script of every function package, and of the benchmark's floor.
//!
//! - **Not position-independent** (`-no-pie`). A position-independent executable carries a
//!   relocation for every pointer in its data (0.5 MB of the infrastructure function's 7.8 MB),
//!   and the dynamic loader applies them at every cold start, writing to each page they touch.
//!   Linked at a fixed address, none are left. A function's process runs alone in its
//!   execution environment and reads only the Runtime API's events and AWS's answers; libc,
//!   the stacks and the heap are still at random addresses (as for Go's executables, which are
//!   not position-independent by default either).
//! - **No unwind tables** (the linker script below). The release profile aborts on a panic, so
//!   nothing unwinds, but the standard library is built with unwind tables and fat LTO keeps
//!   them for every function (0.9 MB and their index). Without them a panic still prints its
//!   message, with an empty backtrace, and aborts.
//! - **The start-up path first.** The functions a function runs from its start to its first
//!   answers (`hot-functions.txt`, written by `bench/hot_functions.py` from profiled runs) go
//!   together at the start of the code. The kernel maps a binary's pages as they are first
//!   touched, 64 kB around each: laid out as the compiler emits them, those functions are
//!   spread over nearly every page of the code, and all of it becomes resident at the first
//!   event. Most names carry no hash, so they still match after the compiler or a dependency
//!   changes; a function that is new since the list was written, or a generic instance
//!   listed whole whose hash changed, is placed with the rest, and only its page is touched
//!   apart.
//!
//! - **Like code together.** The other functions follow the hot ones. The zip's deflate finds
//!   repeats only within 32 kB, and in the order the compiler emits functions, like ones were
//!   often far apart. Each function's order (`order/<arch>/<package>.txt`) is the one the
//!   linker's balanced partitioning for compression (`ld.lld --bp-compression-sort=function`)
//!   chose for its code, which the compiler driver's linker flags cannot ask for, written by
//!   `bench/link_order.py` (make hot-functions) and given here one section at a time: the
//!   same bytes zip 4% smaller than sorted by name. What a listed name no longer matches, and
//!   a function new since the list was written, follows sorted by name, which keeps the
//!   instances of one generic function, and the functions of one module, side by side (5%
//!   smaller than the compiler's order). What a start-up touches is still the hot part.
//!
//! - **One symbol hash table** (`--hash-style=gnu`). The dynamic loader looks the few symbols
//!   a function takes from libc up in the GNU table, as every glibc since 2006 does (Lambda's
//!   Amazon Linux 2 and 2023 among them); the linker's default adds the System V table too,
//!   which no loader reads.
//!
//! Debug builds (the tests) and other targets are linked as Cargo links them.

use std::env;
use std::fs;
use std::path::PathBuf;

/// The start-up path's functions, one symbol per line, most without the hash that ends a
/// Rust symbol (`#` starts a comment).
const HOT_FUNCTIONS: &str = include_str!("hot-functions.txt");

/// The linker script of a release `bootstrap`: one script, because of two that each insert
/// into the layout the linker applied one. `INSERT` keeps the linker's own layout for every
/// section the script does not name.
/// - `.text.hot`: the hot functions' sections (one per function: `.text.` and the symbol,
///   `.text.unlikely.` for a function marked cold), before `.text`. A listed name that ends
///   where a legacy-mangled Rust symbol's hash begins (`17h`) matches every hash, and one
///   that ends with a dot every numbered copy of that function (`.110`); the standard
///   library's v0 symbols and the instances of a generic function are listed whole.
///   A name with a character a linker script would read otherwise is left out.
/// - `.text.rest`: every other function's section, after the hot ones.
///   Both parts are laid out in the function's order (`order`), then sorted by name.
/// - `/DISCARD/`: the unwind tables and the language-specific data only they point to.
fn release_layout(hot_functions: &str, order: &Order) -> String {
    let mut patterns = String::new();
    for name in hot_functions.lines().map(str::trim) {
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if !script_safe(name) {
            println!("cargo::warning=hot-functions.txt: left out {name:?}");
            continue;
        }
        // A legacy-mangled Rust symbol is `_ZN`, its path's parts, then `17h<hash>E`: a name
        // the list ends where the hash begins matches every hash. A name ending with a dot
        // stands for fat LTO's numbered local copies of a function, renumbered at any change.
        let any_hash = name.starts_with("_ZN") && name.ends_with("17h");
        let wildcard = if any_hash || name.ends_with('.') {
            "*"
        } else {
            ""
        };
        patterns.push_str(&format!(
            "      .text.{name}{wildcard}\n      .text.unlikely.{name}{wildcard}\n"
        ));
    }
    let hot = if patterns.is_empty() {
        String::new()
    } else {
        format!(
            "  .text.hot :\n  {{\n{}    *(SORT_BY_NAME(\n{patterns}    ))\n  }}\n",
            order.hot
        )
    };
    format!(
        "SECTIONS\n{{\n{hot}  .text.rest :\n  {{\n{}    *(SORT_BY_NAME(.text.*))\n  }}\n  \
         /DISCARD/ : {{ *(.eh_frame) *(.gcc_except_table .gcc_except_table.*) }}\n}}\n\
         INSERT BEFORE .text;\n",
        order.rest
    )
}

/// Whether a symbol can stand in a linker script's section pattern as it is: a name with
/// any other character (a space, a quote, a parenthesis) would be read as the script's own.
fn script_safe(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.$".contains(&b))
}

/// A function's order: one input section description per listed section, in the list's
/// order (the sections of one description would be laid out in the compiler's).
#[derive(Default)]
struct Order {
    hot: String,
    rest: String,
}

/// Reads an order list (`bench/link_order.py`): `[hot]` then `[rest]`, one section per line.
/// `17h<hash>E` is the legacy-mangled Rust symbol that ends with that hash (any path: the
/// hash alone names it, and the list stays a fifth the size), with a dot after it any of
/// its numbered local copies; any other line is a whole symbol (the standard library's v0
/// symbols, C functions). A line a linker script would read otherwise is left out.
fn read_order(list: &str) -> Order {
    let mut order = Order::default();
    let mut part = None;
    for line in list.lines().map(str::trim) {
        match line {
            "" => continue,
            _ if line.starts_with('#') => continue,
            "[hot]" => part = Some(&mut order.hot),
            "[rest]" => part = Some(&mut order.rest),
            _ => {
                let Some(part) = part.as_deref_mut() else {
                    continue;
                };
                if !script_safe(line) {
                    continue;
                }
                let numbered = if line.ends_with('.') { "*" } else { "" };
                if line.starts_with("17h") {
                    part.push_str(&format!("    *(.text.*{line}{numbered})\n"));
                } else {
                    part.push_str(&format!(
                        "    *(.text.{line}{numbered} .text.unlikely.{line}{numbered})\n"
                    ));
                }
            }
        }
    }
    order
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| env::var(name).unwrap_or_default();
    // The release profile aborts on a panic: without unwind tables, nothing could unwind.
    let release = var("PROFILE") == "release";
    let lambda_linux =
        var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if release && lambda_linux {
        // The order this function's code was last measured in, on this architecture; none
        // (a package without a list, or `AUTOHEAL_LINK_ORDER=none` while a new one is
        // measured) leaves it sorted by name.
        println!("cargo::rerun-if-env-changed=AUTOHEAL_LINK_ORDER");
        // Lambda's names for the architectures, as the template and `make` give them.
        let arch = match var("CARGO_CFG_TARGET_ARCH").as_str() {
            "aarch64" => "arm64".to_owned(),
            other => other.to_owned(),
        };
        let list = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?)
            .join("../release-link/order")
            .join(arch)
            .join(format!("{}.txt", var("CARGO_PKG_NAME")));
        // Watched where it exists: a path that does not would have the script run every build.
        let order = match fs::read_to_string(&list) {
            Ok(text) => {
                println!("cargo::rerun-if-changed={}", list.display());
                if var("AUTOHEAL_LINK_ORDER") == "none" {
                    Order::default()
                } else {
                    read_order(&text)
                }
            }
            Err(e) => {
                // No list is the function laid out by name; a list that cannot be read is said.
                if e.kind() != std::io::ErrorKind::NotFound {
                    println!("cargo::warning={}: {e}", list.display());
                }
                Order::default()
            }
        };
        let script = PathBuf::from(env::var("OUT_DIR")?).join("release-layout.ld");
        fs::write(&script, release_layout(HOT_FUNCTIONS, &order))?;
        println!("cargo::rustc-link-arg-bins=-no-pie");
        println!("cargo::rustc-link-arg-bins=-Wl,--hash-style=gnu");
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
    Ok(())
}
