//! The boundary to the machine: running commands and watching the processes the lab starts.
//!
//! [`SystemRunner`] is the real implementation; unit tests use a scripted fake so the lab
//! logic can be checked without root.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::LabError;

/// Runs commands for the lab. Implementations must not interpret the commands.
pub trait CommandRunner: std::fmt::Debug + Send + Sync {
    /// Runs `argv` to completion, feeding `stdin` if given, and returns its output whatever
    /// its exit status. Fails only if the command could not be run at all.
    fn output(&self, argv: &[String], stdin: Option<&str>) -> Result<Output, LabError>;

    /// Starts `argv` in the background with stdin closed and stdout/stderr appended to `log`;
    /// returns its pid. The process must outlive the caller.
    fn spawn_detached(&self, argv: &[String], log: &Path) -> Result<u32, LabError>;

    /// Whether process `pid` is running (not a zombie) and its command line contains `needle`
    /// (an empty needle matches any process).
    fn process_alive(&self, pid: u32, needle: &str) -> bool;
}

/// Runs commands on this machine with [`std::process::Command`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn output(&self, argv: &[String], stdin: Option<&str>) -> Result<Output, LabError> {
        let spawn_err = |source| LabError::Spawn { command: command_line(argv), source };
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| spawn_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command line")))?;
        let mut cmd = Command::new(program);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A child that exits early closes the pipe; its exit status then tells the story,
            // so a write error here is reported only if the child went on to succeed.
            let write_result = pipe.write_all(text.as_bytes());
            drop(pipe);
            let out = child.wait_with_output().map_err(spawn_err)?;
            if let (Err(e), true) = (write_result, out.status.success()) {
                return Err(spawn_err(e));
            }
            return Ok(out);
        }
        child.wait_with_output().map_err(spawn_err)
    }

    fn spawn_detached(&self, argv: &[String], log: &Path) -> Result<u32, LabError> {
        let state_err = |source| LabError::StatePath { path: log.to_path_buf(), source };
        let out = OpenOptions::new().create(true).append(true).open(log).map_err(state_err)?;
        let err: File = out.try_clone().map_err(state_err)?;
        let spawn_err = |source| LabError::Spawn { command: command_line(argv), source };
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| spawn_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command line")))?;
        let mut child =
            Command::new(program).args(args).stdin(Stdio::null()).stdout(out).stderr(err).spawn().map_err(spawn_err)?;
        let pid = child.id();
        // Reap the child when it exits so it does not linger as a zombie while this process
        // lives; the thread ends with the child (or with this process).
        std::thread::spawn(move || child.wait());
        Ok(pid)
    }

    fn process_alive(&self, pid: u32, needle: &str) -> bool {
        let proc_dir = Path::new("/proc").join(pid.to_string());
        let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
            return false;
        };
        if matches!(proc_state(&stat), None | Some('Z' | 'X')) {
            return false;
        }
        let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
            return false;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        cmdline.contains(needle)
    }
}

/// The state letter from a `/proc/<pid>/stat` line (the field after the parenthesised name,
/// which may itself contain spaces and parentheses).
fn proc_state(stat: &str) -> Option<char> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.trim_start().chars().next()
}

/// Renders `argv` as one shell-like line for messages: arguments with spaces or quotes are
/// single-quoted.
pub fn command_line(argv: &[String]) -> String {
    let parts: Vec<String> = argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect();
    parts.join(" ")
}

/// Builds an owned argv from string slices.
pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// Turns an unsuccessful [`Output`] into [`LabError::CommandFailed`].
pub fn check(argv: &[String], out: Output) -> Result<Output, LabError> {
    if out.status.success() {
        return Ok(out);
    }
    Err(LabError::CommandFailed {
        command: command_line(argv),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_only_what_needs_it() {
        let line = command_line(&argv(&["nft", "-f", "-", "a b", "it's", ""]));
        assert_eq!(line, r"nft -f - 'a b' 'it'\''s' ''");
    }

    #[test]
    fn proc_state_skips_names_with_parentheses_and_spaces() {
        assert_eq!(proc_state("42 (tcp dump) S 1 42 42 0"), Some('S'));
        assert_eq!(proc_state("42 (a) b)) Z 1"), Some('Z'));
        assert_eq!(proc_state("garbage"), None);
    }

    #[test]
    fn failing_commands_name_the_command_and_its_stderr() {
        let cmd = argv(&["sh", "-c", "echo nope >&2; exit 3"]);
        let out = SystemRunner.output(&cmd, None).expect("sh runs");
        let err = check(&cmd, out).expect_err("exit 3");
        let text = err.to_string();
        assert!(text.contains("sh -c 'echo nope >&2; exit 3'"), "{text}");
        assert!(text.contains("nope"), "{text}");
    }

    #[test]
    fn stdin_is_fed_and_missing_programs_keep_their_io_error() {
        let cmd = argv(&["cat"]);
        let out = SystemRunner.output(&cmd, Some("hello")).expect("cat runs");
        assert_eq!(out.stdout, b"hello");
        let err = SystemRunner.output(&argv(&["/nonexistent/palisade-lab-test"]), None).expect_err("no such program");
        assert!(matches!(&err, LabError::Spawn { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound));
    }

    #[test]
    fn own_process_is_alive_and_needle_must_match() {
        let me = std::process::id();
        assert!(SystemRunner.process_alive(me, ""));
        assert!(!SystemRunner.process_alive(me, "no-such-needle-palisade-xyz"));
    }
}
