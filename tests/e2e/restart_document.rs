//! The restart document (`RestartProcessDocument` in `template.yaml`) is all the application
//! role can run on an instance: its script, taken from the template as the stack deploys it
//! and run with `sh` as the Systems Manager agent runs it, against stand-ins of `systemctl`
//! and the dump tools that note each call. It stops and starts the unit, after a heap dump
//! within its bounds when asked, and runs nothing else, whatever a unit's name says.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use autoheal_tests::ScratchDir;
use autoheal_tests::application::restart_document_content;

/// Stand-ins that note their call in `$LOG` (and make a dump file as the real tools do).
const STUBS: [(&str, &str); 8] = [
    (
        "systemctl",
        r#"echo "systemctl $*" >> "$LOG"; [ "$1" = show ] && echo "${MAIN_PID:-4242}"; exit 0"#,
    ),
    ("ps", "echo appuser"),
    ("chown", r#"echo "chown $*" >> "$LOG""#),
    (
        "runuser",
        r#"while [ "$1" != "--" ]; do shift; done; shift; echo "runuser $1" >> "$LOG"; exec "$@""#,
    ),
    (
        "jcmd",
        r#"echo "jcmd $*" >> "$LOG"; [ -n "${DUMP_FAILS:-}" ] && exit 1; dd if=/dev/zero of="$3" bs=1024 count="${DUMP_KB:-10}" 2>/dev/null"#,
    ),
    (
        "jmap",
        r#"echo "jmap $*" >> "$LOG"; file="${1#-dump:format=b,file=}"; dd if=/dev/zero of="$file" bs=1024 count="${DUMP_KB:-10}" 2>/dev/null"#,
    ),
    (
        "gcore",
        r#"echo "gcore $*" >> "$LOG"; dd if=/dev/zero of="$2.$3" bs=1024 count="${DUMP_KB:-10}" 2>/dev/null"#,
    ),
    (
        "df",
        r#"echo "Filesystem 1024-blocks Used Available Capacity Mounted"; echo "/dev/x 1 0 ${FREE_KB:-999999999} 0% /""#,
    ),
];

/// What one run of the document did.
#[derive(Debug)]
struct Run {
    status: i32,
    calls: Vec<String>,
    stderr: String,
}

/// The document's script with its parameters filled in as Systems Manager does (a declared
/// default where a parameter is not given), run in `dir` with the stand-ins first on `PATH`.
fn run(dir: &ScratchDir, parameters: &[(&str, &str)], env: &[(&str, &str)]) -> Run {
    let content = restart_document_content();
    let mut values: BTreeMap<String, String> = content["parameters"]
        .as_object()
        .expect("parameters")
        .iter()
        .filter_map(|(name, spec)| Some((name.clone(), spec["default"].as_str()?.to_owned())))
        .collect();
    for (name, value) in parameters {
        assert!(
            content["parameters"][*name].is_object(),
            "{name} is not a parameter of the document"
        );
        values.insert((*name).to_owned(), (*value).to_owned());
    }
    let steps = content["mainSteps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "one step");
    assert_eq!(steps[0]["action"], "aws:runShellScript");
    let mut script = steps[0]["inputs"]["runCommand"]
        .as_array()
        .expect("the script's lines")
        .iter()
        .map(|line| line.as_str().expect("a line"))
        .collect::<Vec<_>>()
        .join("\n");
    for (name, value) in &values {
        script = script.replace(&format!("{{{{ {name} }}}}"), value);
    }
    assert!(
        !script.contains("{{"),
        "every parameter filled in: {script}"
    );

    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    for (name, body) in STUBS {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("stub");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let log = dir.join("calls.log");
    let _ = std::fs::remove_file(&log);
    let output = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.join(""))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("LOG", &log)
        .envs(env.iter().copied())
        .output()
        .expect("run sh");
    Run {
        status: output.status.code().unwrap_or(-1),
        calls: std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn dump_dir(dir: &ScratchDir) -> String {
    dir.join("dumps").display().to_string()
}

#[test]
fn without_a_heap_dump_it_stops_the_unit_gracefully_then_starts_it_and_nothing_else() {
    let dir = ScratchDir::new("restart-plain");
    let done = run(&dir, &[("unit", "app"), ("stopTimeoutSeconds", "45")], &[]);
    assert_eq!(done.status, 0, "{done:?}");
    assert_eq!(done.calls, ["systemctl stop app", "systemctl start app"]);
}

#[test]
fn a_heap_dump_is_taken_as_the_units_owner_before_the_restart_and_kept_within_its_size() {
    let dir = ScratchDir::new("restart-dump");
    let dumps = dump_dir(&dir);
    let file = format!("{dumps}/app-cdef0001.dump");
    for (tool, call) in [
        ("jcmd", format!("jcmd 4242 GC.heap_dump {file}")),
        ("jmap", format!("jmap -dump:format=b,file={file} 4242")),
        ("gcore", format!("gcore -o {file} 4242")),
    ] {
        let done = run(
            &dir,
            &[
                ("unit", "app"),
                ("heapDump", tool),
                ("heapDumpMaxMb", "1"),
                ("heapDumpDirectory", &dumps),
                ("dumpName", "cdef0001"),
            ],
            &[("DUMP_KB", "10")],
        );
        assert_eq!(done.status, 0, "{tool}: {done:?}");
        let dump_at = done.calls.iter().position(|c| *c == call);
        let stop_at = done.calls.iter().position(|c| c == "systemctl stop app");
        assert!(
            dump_at.is_some() && dump_at < stop_at,
            "{tool}: the dump, then the stop: {done:?}"
        );
        assert_eq!(
            done.calls.last().map(String::as_str),
            Some("systemctl start app")
        );
        assert!(Path::new(&file).exists(), "{tool}: the dump is kept");
        std::fs::remove_file(&file).expect("clear the dump");
    }
}

#[test]
fn a_dump_over_its_limit_is_deleted_and_none_is_taken_without_room_and_the_restart_goes_on() {
    let dir = ScratchDir::new("restart-bounds");
    let dumps = dump_dir(&dir);
    let file = format!("{dumps}/app-t1.dump");
    let parameters = [
        ("unit", "app"),
        ("heapDump", "jcmd"),
        ("heapDumpMaxMb", "1"),
        ("heapDumpDirectory", dumps.as_str()),
        ("dumpName", "t1"),
    ];

    let too_big = run(&dir, &parameters, &[("DUMP_KB", "2048")]);
    assert!(!Path::new(&file).exists(), "deleted: {too_big:?}");
    assert!(too_big.stderr.contains("was deleted"), "{too_big:?}");

    let no_room = run(&dir, &parameters, &[("FREE_KB", "100")]);
    assert!(
        !no_room.calls.iter().any(|c| c.starts_with("jcmd")),
        "no dump without twice the limit free: {no_room:?}"
    );

    let failing = run(&dir, &parameters, &[("DUMP_FAILS", "1")]);
    assert!(failing.stderr.contains("heap dump failed"), "{failing:?}");

    for done in [too_big, no_room, failing] {
        assert_eq!(done.status, 0, "{done:?}");
        assert_eq!(
            done.calls[done.calls.len() - 2..],
            ["systemctl stop app", "systemctl start app"],
            "the restart goes on: {done:?}"
        );
    }
}

#[test]
fn the_agent_ssh_and_systemd_are_never_restarted_and_no_unit_name_runs_as_shell() {
    let dir = ScratchDir::new("restart-refused");
    let pwned = dir.join("pwned");
    let hostile = format!("app'; touch {}; echo '", pwned.display());
    let substituted = format!("app$(touch {})", pwned.display());
    for unit in [
        "amazon-ssm-agent",
        "amazon-ssm-agent.service",
        "sshd",
        "systemd-journald",
        "dbus",
        hostile.as_str(),
        substituted.as_str(),
        "",
    ] {
        let done = run(&dir, &[("unit", unit)], &[]);
        assert_eq!(done.status, 2, "{unit}: {done:?}");
        assert!(done.calls.is_empty(), "{unit}: nothing is run: {done:?}");
        assert!(!pwned.exists(), "{unit}: the name ran as shell");
    }
}
