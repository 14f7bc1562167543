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
//!
//! Debug builds (the tests) and other targets are linked as Cargo links them.

use std::env;
use std::fs;
use std::path::PathBuf;

/// Drops the unwind tables and the language-specific data only they point to; `INSERT` keeps
/// the linker's own layout for every other section.
const DISCARD_UNWIND_TABLES: &str = "\
SECTIONS
{
  /DISCARD/ : { *(.eh_frame) *(.gcc_except_table .gcc_except_table.*) }
}
INSERT AFTER .text;
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| env::var(name).unwrap_or_default();
    // The release profile aborts on a panic: without unwind tables, nothing could unwind.
    let release = var("PROFILE") == "release";
    let lambda_linux =
        var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if release && lambda_linux {
        let script = PathBuf::from(env::var("OUT_DIR")?).join("discard-unwind-tables.ld");
        fs::write(&script, DISCARD_UNWIND_TABLES)?;
        println!("cargo::rustc-link-arg-bins=-no-pie");
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
    Ok(())
}
