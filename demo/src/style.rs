//! Bold headings for a person at a terminal; plain text into a pipe or a file, and whenever
//! `NO_COLOR` is set (<https://no-color.org>), so that `make demo | tee demo.log` holds no
//! escape code.

use std::ffi::OsStr;
use std::io::IsTerminal;

/// `text` in bold when stdout is a terminal and `NO_COLOR` is not set, else as it is.
pub fn bold(text: &str) -> String {
    let styled = wants_style(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    bold_if(styled, text)
}

/// Style only on a terminal, and never with `NO_COLOR` set, to anything.
fn wants_style(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none()
}

fn bold_if(styled: bool, text: &str) -> String {
    if styled {
        format!("\x1b[1m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_terminal_without_no_color_gets_escape_codes() {
        assert!(wants_style(true, None));
        assert!(!wants_style(false, None), "a pipe or a file");
        assert!(!wants_style(true, Some(OsStr::new("1"))));
        assert!(!wants_style(true, Some(OsStr::new(""))), "set, if empty");
        assert!(!wants_style(false, Some(OsStr::new("1"))));
    }

    #[test]
    fn plain_text_has_no_escape_code_and_bold_text_is_reset_after_it() {
        assert_eq!(bold_if(false, "== Start"), "== Start");
        assert_eq!(bold_if(true, "== Start"), "\x1b[1m== Start\x1b[0m");
    }
}
