//! The host Palisade runs on, as its crates all need it: running a host tool (`ip`, `ovs-vsctl`,
//! `nft`, ...) and saying why it failed, and writing an error with its causes on one line.
//! Owns no knowledge of what the tools do (callers build the arguments and read the output).

#![forbid(unsafe_code)]

use std::fmt;
use std::io::Write as _;
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
    /// The program could not be started (missing, not executable).
    #[error("cannot run `{command}`")]
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
}

/// Runs `argv` (program and arguments) with no input and returns its output when it succeeds.
pub fn run(argv: &[&str]) -> Result<Output, ToolError> {
    run_with_input(argv, None)
}

/// Runs `argv`, writing `input` to its standard input if given (closed otherwise), and returns
/// its output when it succeeds. A program that exits before reading all its input is judged by
/// its exit status.
pub fn run_with_input(argv: &[&str], input: Option<&[u8]>) -> Result<Output, ToolError> {
    let command = argv.join(" ");
    let spawn = |source| ToolError::Spawn { command: command.clone(), source };
    let Some((program, args)) = argv.split_first() else {
        return Err(spawn(std::io::Error::new(std::io::ErrorKind::InvalidInput, "no program given")));
    };
    tracing::debug!(%command, "running");
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    let written = match (input, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => pipe.write_all(bytes),
        _ => Ok(()),
    };
    let out = child.wait_with_output().map_err(spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(ToolError::Failed { command, status: out.status, stderr });
    }
    written.map_err(spawn)?;
    Ok(out)
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
        assert!(text.starts_with("`sh -c echo nope >&2; exit 3` failed (exit status: 3): nope"), "{text}");
        assert_eq!(run(&["echo", "hi"]).unwrap().stdout, b"hi\n");
        let missing = chain(&run(&["/nonexistent/tool"]).unwrap_err());
        assert!(missing.starts_with("cannot run `/nonexistent/tool`: "), "{missing}");
        assert!(run(&[]).is_err());
    }

    #[test]
    fn input_reaches_the_tool() {
        let out = run_with_input(&["tr", "a-z", "A-Z"], Some(b"bundle")).unwrap();
        assert_eq!(out.stdout, b"BUNDLE");
        let err = run_with_input(&["sh", "-c", "exit 4"], Some(&[0u8; 1 << 20])).unwrap_err();
        assert!(matches!(err, ToolError::Failed { .. }), "an early exit is judged by its status: {err}");
    }
}
