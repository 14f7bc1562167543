//! The floors of the core hold: every import in `src/` runs to its own floor or below it, and
//! no files import each other, even round a circle. The floors are the table
//! `autoheal_core::floors::FLOORS`; a file's floor is the first segment of its module path.
//!
//! The imports are read from the source: `use` declarations (`crate::`, `super::`, `self::`
//! and a child module's name), and the `crate::` and `super::` paths written in code.
//! Comments, doc comments and string literals are not code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use autoheal_core::floors::FLOORS;

/// The crate root's own files: they declare and re-export the floors, and no floor may import
/// them.
const ROOT_FILES: [&str; 2] = ["lib.rs", "floors.rs"];

#[test]
fn every_import_of_the_core_runs_down_and_closes_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    assert!(
        files.len() > 20,
        "read {} files of {}",
        files.len(),
        src.display()
    );
    let floors: Vec<&str> = FLOORS.iter().map(|(name, _)| *name).collect();
    let sources: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, text)| (path.as_str(), text.as_str()))
        .collect();
    let problems = problems(&sources, &floors);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn an_import_up_a_floor_fails_naming_both_files() {
    let files = [
        ("lib.rs", "pub mod engine;\npub mod model;\n"),
        ("model/mod.rs", "pub mod event;\n"),
        (
            "model/event.rs",
            "use crate::engine::run::Run;\npub struct Event;\n",
        ),
        ("engine/mod.rs", "pub mod run;\n"),
        (
            "engine/run.rs",
            "use crate::model::event::Event;\npub struct Run;\n",
        ),
    ];
    let problems = problems(&files, &["model", "engine"]);
    assert!(
        problems.iter().any(|problem| problem.contains("up a floor")
            && problem.contains("model/event.rs")
            && problem.contains("engine/run.rs")),
        "{problems:?}"
    );
}

#[test]
fn a_path_in_code_counts_as_an_import_and_so_does_a_root_reexport() {
    let files = [
        (
            "lib.rs",
            "pub mod engine;\npub mod model;\npub use engine::Engine;\n",
        ),
        ("model/mod.rs", "pub mod a;\npub mod b;\n"),
        (
            "model/a.rs",
            "pub fn f() { let _ = crate::engine::Engine::new(); }\n",
        ),
        ("model/b.rs", "use crate::Engine;\n"),
        ("engine/mod.rs", "pub struct Engine;\n"),
    ];
    let problems = problems(&files, &["model", "engine"]);
    let named = |from: &str, to: &str| {
        problems
            .iter()
            .any(|problem| problem.contains(from) && problem.contains(to))
    };
    assert!(named("model/a.rs", "engine/mod.rs"), "{problems:?}");
    assert!(named("model/b.rs", "lib.rs"), "{problems:?}");
}

#[test]
fn a_circle_on_one_floor_fails_naming_its_files() {
    let files = [
        ("lib.rs", "pub mod model;\n"),
        ("model/mod.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        ("model/a.rs", "use super::b::B;\npub struct A;\n"),
        ("model/b.rs", "use super::c::{self, C};\npub struct B;\n"),
        (
            "model/c.rs",
            "use crate::model::{a::A, b};\npub struct C;\n",
        ),
    ];
    let problems = problems(&files, &["model"]);
    assert!(
        problems.iter().any(|problem| problem.contains("circle")
            && ["model/a.rs", "model/b.rs", "model/c.rs"]
                .iter()
                .all(|file| problem.contains(file))),
        "{problems:?}"
    );
}

#[test]
fn comments_strings_and_a_test_module_of_the_file_itself_are_no_imports() {
    let files = [
        ("lib.rs", "pub mod engine;\npub mod model;\n"),
        ("model/mod.rs", "pub mod a;\n"),
        (
            "model/a.rs",
            "//! See [`crate::engine::Engine`].\n\
             /* use crate::engine::Engine; */\n\
             pub const NOTE: &str = \"crate::engine::Engine\";\n\
             pub const RAW: &str = r#\"use crate::engine::Engine;\"#;\n\
             pub fn first<'a>(x: &'a str) -> char { let _ = '\"'; x.chars().next().unwrap_or('{') }\n\
             #[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::a::first;\n}\n",
        ),
        (
            "engine/mod.rs",
            "use crate::model::a::first;\npub struct Engine;\n",
        ),
    ];
    let problems = problems(&files, &["model", "engine"]);
    assert!(problems.is_empty(), "{problems:?}");
}

/// Every `.rs` file under `dir`, as its path relative to `src` (with `/`) and its text.
fn read_tree(src: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(src, &path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let relative = path
                .strip_prefix(src)
                .unwrap_or(&path)
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            files.push((relative, text));
        }
    }
}

/// What is wrong with the imports of `files` (path under `src/`, text) against `floors`
/// (bottom first): one sentence per import up a floor, per import of the crate root, per file
/// on no floor, and per circle.
fn problems(files: &[(&str, &str)], floors: &[&str]) -> Vec<String> {
    let modules: BTreeMap<Vec<String>, &str> = files
        .iter()
        .map(|(path, _)| (module_of(path), *path))
        .collect();
    let floor_of = |path: &str| -> Result<Option<usize>, String> {
        if ROOT_FILES.contains(&path) {
            return Ok(None);
        }
        let first = module_of(path).into_iter().next().unwrap_or_default();
        floors
            .iter()
            .position(|floor| *floor == first)
            .map(Some)
            .ok_or_else(|| format!("{path} stands on no floor: add `{first}` to the table"))
    };
    let mut problems = Vec::new();
    let mut arrows: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (path, text) in files {
        let from_floor = match floor_of(path) {
            Ok(floor) => floor,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        for import in imports(&module_of(path), text) {
            let Some(target) = resolve(&modules, &import) else {
                continue;
            };
            if target == *path {
                continue;
            }
            let Some(from) = from_floor else {
                continue;
            };
            match floor_of(target) {
                Ok(Some(to)) if to > from => problems.push(format!(
                    "{path} imports {target}: up a floor ({} below {}) by `{}`",
                    floors[from],
                    floors[to],
                    import.join("::")
                )),
                Ok(None) => problems.push(format!(
                    "{path} imports {target}: a floor imports from the floors, not through the \
                     crate root (`{}`)",
                    import.join("::")
                )),
                _ => {}
            }
            arrows.entry(path).or_default().insert(target);
        }
    }
    problems.extend(circles(&arrows));
    problems
}

/// The module path of a file under `src/`: `lib.rs` is the root, `a/mod.rs` is `a`,
/// `a/b.rs` is `a::b`.
fn module_of(path: &str) -> Vec<String> {
    let stem = path.strip_suffix(".rs").unwrap_or(path);
    let mut segments: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if segments
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        segments.pop();
    }
    segments
}

/// The file that defines the longest module prefix of `path` (an absolute path from the
/// crate root), or `None` when `path` does not name this crate.
fn resolve<'a>(modules: &BTreeMap<Vec<String>, &'a str>, path: &[String]) -> Option<&'a str> {
    (0..=path.len())
        .rev()
        .find_map(|length| modules.get(&path[..length]).copied())
}

/// The absolute paths (from the crate root) this file's code imports. `module` is the file's
/// module path; inline modules (`mod tests { .. }`) are followed for `super::`.
fn imports(module: &[String], text: &str) -> Vec<Vec<String>> {
    let tokens = tokens(text);
    let mut found = Vec::new();
    // The inline modules open at each point, with the brace depth they close at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut at = 0;
    while at < tokens.len() {
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect();
        match tokens[at].as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, close)| *close == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(at + 2).is_some_and(|t| t == "{") => {
                inline.push((tokens[at + 1].clone(), depth));
            }
            "use" => {
                let end = tokens[at..]
                    .iter()
                    .position(|t| t == ";")
                    .map_or(tokens.len(), |offset| at + offset);
                let mut trees = Vec::new();
                use_tree(&tokens[at + 1..end], &[], &mut trees);
                found.extend(trees.iter().filter_map(|tree| absolute(&here, tree, true)));
                at = end;
                continue;
            }
            "crate" | "super" if tokens.get(at + 1).is_some_and(|t| t == "::") => {
                let mut path = vec![tokens[at].clone()];
                let mut next = at + 1;
                while tokens.get(next).is_some_and(|t| t == "::")
                    && tokens.get(next + 1).is_some_and(|t| is_identifier(t))
                {
                    path.push(tokens[next + 1].clone());
                    next += 2;
                }
                found.extend(absolute(&here, &path, false));
                at = next;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    found
}

/// The paths a use tree names (`a::{b, c::d}` names `a::b` and `a::c::d`; `a::{self}` names
/// `a`), each prefixed with `prefix`.
fn use_tree(tokens: &[String], prefix: &[String], paths: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut at = 0;
    while at < tokens.len() {
        match tokens[at].as_str() {
            "::" | "pub" | "(" | ")" => {}
            "{" => {
                // The group's items, split at the commas of this level.
                let mut level = 0;
                let mut start = at + 1;
                for index in at + 1..tokens.len() {
                    match tokens[index].as_str() {
                        "{" => level += 1,
                        "}" if level == 0 => {
                            use_tree(&tokens[start..index], &path, paths);
                            return;
                        }
                        "}" => level -= 1,
                        "," if level == 0 => {
                            use_tree(&tokens[start..index], &path, paths);
                            start = index + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            "as" => break,
            "*" => break,
            "self" if !path.is_empty() => {}
            segment => path.push(segment.to_owned()),
        }
        at += 1;
    }
    if !path.is_empty() {
        paths.push(path);
    }
}

/// `path` as written in module `here`, from the crate root; `None` for another crate's path.
/// A use path may also start with the name of a child module of `here`.
fn absolute(here: &[String], path: &[String], is_use: bool) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => here.to_vec(),
        _ if is_use && first.chars().next().is_some_and(char::is_lowercase) => {
            let mut child = here.to_vec();
            child.push(first.clone());
            return Some(child.into_iter().chain(path[1..].iter().cloned()).collect());
        }
        _ => return None,
    };
    let mut rest = &path[1..];
    if first == "super" {
        base.pop()?;
        while rest.first().is_some_and(|segment| segment == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The code of `text` as tokens: identifiers, `::` and single punctuation; comments, string
/// and character literals and numbers left out.
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    let peek = |at: usize| chars.get(at).copied().unwrap_or('\0');
    while at < chars.len() {
        let c = chars[at];
        if c == '/' && peek(at + 1) == '/' {
            while at < chars.len() && chars[at] != '\n' {
                at += 1;
            }
        } else if c == '/' && peek(at + 1) == '*' {
            let mut level = 0;
            while at < chars.len() {
                if chars[at] == '/' && peek(at + 1) == '*' {
                    level += 1;
                    at += 2;
                } else if chars[at] == '*' && peek(at + 1) == '/' {
                    level -= 1;
                    at += 2;
                    if level == 0 {
                        break;
                    }
                } else {
                    at += 1;
                }
            }
        } else if c == '"' {
            at += 1;
            while at < chars.len() && chars[at] != '"' {
                at += if chars[at] == '\\' { 2 } else { 1 };
            }
            at += 1;
        } else if c == 'r' && (peek(at + 1) == '#' || peek(at + 1) == '"') && {
            let hashes = chars[at + 1..].iter().take_while(|c| **c == '#').count();
            peek(at + 1 + hashes) == '"'
        } {
            let hashes = chars[at + 1..].iter().take_while(|c| **c == '#').count();
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            at += hashes + 2;
            while at < chars.len() && !chars[at..].starts_with(&close) {
                at += 1;
            }
            at += close.len();
        } else if c == '\'' {
            if peek(at + 1) == '\\' {
                at += 2;
                while at < chars.len() && chars[at] != '\'' {
                    at += 1;
                }
                at += 1;
            } else if peek(at + 2) == '\'' {
                at += 3;
            } else {
                // A lifetime or a label.
                at += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = at;
            while at < chars.len() && (chars[at].is_alphanumeric() || chars[at] == '_') {
                at += 1;
            }
            tokens.push(chars[start..at].iter().collect());
        } else if c.is_ascii_digit() {
            while at < chars.len() && (chars[at].is_alphanumeric() || chars[at] == '_') {
                at += 1;
            }
        } else if c == ':' && peek(at + 1) == ':' {
            tokens.push("::".to_owned());
            at += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
            at += 1;
        }
    }
    tokens
}

/// One sentence per circle among the files: per set of files that all reach each other
/// through their imports, its shortest circle through its first file, and every file tied in.
fn circles(arrows: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut tied_up: BTreeSet<&str> = BTreeSet::new();
    for from in arrows.keys() {
        if tied_up.contains(from) {
            continue;
        }
        let circle = arrows[from]
            .iter()
            .filter_map(|to| path_between(arrows, to, from))
            .min_by_key(Vec::len);
        let Some(back) = circle else {
            continue;
        };
        let tied: BTreeSet<&str> = arrows
            .keys()
            .copied()
            .filter(|file| {
                path_between(arrows, from, file).is_some()
                    && path_between(arrows, file, from).is_some()
            })
            .collect();
        tied_up.extend(tied.iter().copied());
        let files: Vec<&str> = std::iter::once(*from).chain(back).collect();
        let mut problem = format!(
            "{from} imports {}, which closes a circle: {}",
            files[1],
            files.join(" -> ")
        );
        if tied.len() + 1 > files.len() {
            let all: Vec<&str> = tied.into_iter().collect();
            problem.push_str(&format!(" ({} files tied: {})", all.len(), all.join(", ")));
        }
        problems.push(problem);
    }
    problems
}

/// The files from `start` to `goal` along the imports (both included), if `goal` is
/// reachable; breadth first, so the path is a shortest one.
fn path_between<'a>(
    arrows: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    start: &'a str,
    goal: &'a str,
) -> Option<Vec<&'a str>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut seen = BTreeSet::from([start]);
    while let Some(file) = queue.pop_front() {
        if file == goal {
            let mut path = vec![goal];
            let mut at = goal;
            while let Some(previous) = came_from.get(at) {
                path.push(previous);
                at = previous;
            }
            path.reverse();
            return Some(path);
        }
        for next in arrows.get(file).into_iter().flatten() {
            if seen.insert(next) {
                came_from.insert(next, file);
                queue.push_back(next);
            }
        }
    }
    None
}
