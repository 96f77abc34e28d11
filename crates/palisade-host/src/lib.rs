//! The host Palisade runs on, as its crates all need it: running a host tool (`ip`, `ovs-vsctl`,
//! `nft`, ...) to completion and saying why it failed, signalling a process ([`signal`]),
//! running code inside a network namespace ([`netns`]), and writing an error with its causes
//! on one line. Owns no knowledge of what the tools do (callers build the arguments and read
//! the output), nor the long-running children a caller supervises through their `Child` handle.

#![forbid(unsafe_code)]

pub mod netns;
pub mod signal;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// An error and its causes on one line: `outer: cause: root cause`. For logs, status details
/// and the CLI; API replies to tenants never carry it (see the controller).
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// `error` and its causes on one line (see [`ErrorChain`]).
pub fn chain(error: &dyn std::error::Error) -> String {
    ErrorChain(error).to_string()
}

/// A host tool that could not be run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program could not be started (missing, not executable), or its input not written.
    #[error("could not run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// What it wrote on stderr, trimmed.
        stderr: String,
    },
    /// The log file of a background process could not be opened.
    #[error("cannot open the log file {path}")]
    Log {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs commands on the host. One real implementation ([`SystemRunner`]); unit tests script a
/// fake so that the logic above it is checked without root. Implementations do not interpret
/// the commands.
pub trait CommandRunner: std::fmt::Debug + Send + Sync {
    /// Runs `argv` to completion, feeding `stdin` if given, and returns its output whatever its
    /// exit status. Fails only if the command could not be run at all.
    fn output(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<Output, ToolError>;
    /// Starts `argv` in the background with stdin closed and stdout/stderr appended to `log`;
    /// returns its pid. The process outlives the caller.
    fn spawn_detached(&self, argv: &[String], log: &Path) -> Result<u32, ToolError>;
    /// Whether process `pid` is running (not a zombie) and its command line contains `needle`
    /// (an empty needle matches any process).
    fn process_alive(&self, pid: u32, needle: &str) -> bool;
}

/// Runs commands on this machine with [`std::process::Command`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn output(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<Output, ToolError> {
        output_with(argv, &RunOptions { input: stdin, ..RunOptions::default() })
    }

    fn spawn_detached(&self, argv: &[String], log: &Path) -> Result<u32, ToolError> {
        let log_err = |source| ToolError::Log { path: log.to_path_buf(), source };
        let out = OpenOptions::new().create(true).append(true).open(log).map_err(log_err)?;
        let err: File = out.try_clone().map_err(log_err)?;
        let spawn_err = |source| ToolError::Spawn { command: command_line(argv), source };
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
        String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle)
    }
}

/// What a command runs with besides its arguments. The default: standard input closed, this
/// process's working directory and environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunOptions<'a> {
    /// Written to its standard input, which is then closed (closed from the start if `None`).
    pub input: Option<&'a [u8]>,
    /// Its working directory (this process's if `None`).
    pub cwd: Option<&'a Path>,
    /// Variables set in its environment, over this process's.
    pub env: &'a [(&'a str, &'a str)],
}

/// Runs `argv` on this machine as `options` say and returns its output whatever its exit
/// status: the one implementation behind [`SystemRunner`] and [`run_with`].
fn output_with(argv: &[String], options: &RunOptions<'_>) -> Result<Output, ToolError> {
    let spawn_err = |source| ToolError::Spawn { command: command_line(argv), source };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| spawn_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command line")))?;
    tracing::debug!(command = %command_line(argv), "running");
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if options.input.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.envs(options.env.iter().copied());
    if let Some(dir) = options.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(bytes), Some(mut pipe)) = (options.input, child.stdin.take()) {
        // A child that exits early closes the pipe; its exit status then tells the story,
        // so a write error here is reported only if the child went on to succeed.
        let write_result = pipe.write_all(bytes);
        drop(pipe);
        let out = child.wait_with_output().map_err(spawn_err)?;
        if let (Err(e), true) = (write_result, out.status.success()) {
            return Err(spawn_err(e));
        }
        return Ok(out);
    }
    child.wait_with_output().map_err(spawn_err)
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

/// Turns an unsuccessful [`Output`] of `argv` into [`ToolError::Failed`].
pub fn check(argv: &[String], out: Output) -> Result<Output, ToolError> {
    if out.status.success() {
        return Ok(out);
    }
    Err(ToolError::Failed {
        command: command_line(argv),
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Runs `argv` (program and arguments) with no input and returns its output when it succeeds.
pub fn run(parts: &[&str]) -> Result<Output, ToolError> {
    run_with_input(parts, None)
}

/// Runs `argv`, writing `input` to its standard input if given (closed otherwise), and returns
/// its output when it succeeds.
pub fn run_with_input(parts: &[&str], input: Option<&[u8]>) -> Result<Output, ToolError> {
    run_with(parts, &RunOptions { input, ..RunOptions::default() })
}

/// Runs `argv` as `options` say (input, working directory, environment) and returns its output
/// when it succeeds.
pub fn run_with(parts: &[&str], options: &RunOptions<'_>) -> Result<Output, ToolError> {
    let cmd = argv(parts);
    check(&cmd, output_with(&cmd, options)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("could not read `{path}`")]
    struct Outer {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_chain_names_every_cause_once() {
        let err =
            Outer { path: "/x".into(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file") };
        assert_eq!(chain(&err), "could not read `/x`: no such file");
        assert_eq!(ErrorChain(&err).to_string(), chain(&err));
    }

    #[test]
    fn a_tool_that_fails_says_how_and_what_it_printed() {
        let err = run(&["sh", "-c", "echo nope >&2; exit 3"]).unwrap_err();
        let text = chain(&err);
        assert!(text.starts_with("`sh -c 'echo nope >&2; exit 3'` failed (exit status: 3): nope"), "{text}");
        assert_eq!(run(&["echo", "hi"]).unwrap().stdout, b"hi\n");
        let missing = chain(&run(&["/nonexistent/tool"]).unwrap_err());
        assert!(missing.starts_with("could not run `/nonexistent/tool`: "), "{missing}");
        assert!(run(&[]).is_err());
    }

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
        let out = SystemRunner.output(&cmd, Some(b"hello")).expect("cat runs");
        assert_eq!(out.stdout, b"hello");
        let err = SystemRunner.output(&argv(&["/nonexistent/palisade-lab-test"]), None).expect_err("no such program");
        assert!(matches!(&err, ToolError::Spawn { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound));
    }

    #[test]
    fn own_process_is_alive_and_needle_must_match() {
        let me = std::process::id();
        assert!(SystemRunner.process_alive(me, ""));
        assert!(!SystemRunner.process_alive(me, "no-such-needle-palisade-xyz"));
    }

    #[test]
    fn options_set_the_directory_and_the_environment() {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let env = [("LC_ALL", "C"), ("PALISADE_X", "y z")];
        let options = RunOptions { cwd: Some(&dir), env: &env, ..RunOptions::default() };

        let out = run_with(&["sh", "-c", r#"pwd; echo "$LC_ALL $PALISADE_X""#], &options).unwrap();

        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}\nC y z\n", dir.display()));
        let missing = RunOptions { cwd: Some(Path::new("/nonexistent/palisade-dir")), ..RunOptions::default() };
        assert!(matches!(run_with(&["true"], &missing), Err(ToolError::Spawn { .. })));
    }

    #[test]
    fn input_reaches_the_tool() {
        let out = run_with_input(&["tr", "a-z", "A-Z"], Some(b"bundle")).unwrap();
        assert_eq!(out.stdout, b"BUNDLE");
        let err = run_with_input(&["sh", "-c", "exit 4"], Some(&[0u8; 1 << 20])).unwrap_err();
        assert!(matches!(err, ToolError::Failed { .. }), "an early exit is judged by its status: {err}");
    }
}
