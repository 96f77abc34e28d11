//! A small synchronous QMP (QEMU Machine Protocol) client for guest lifecycle: stop, cont,
//! status, quit, powerdown.
//!
//! QMP is one JSON object per line. The server greets (`{"QMP": ...}`), the client answers
//! `qmp_capabilities`, then each command gets exactly one reply (`return` or `error`) carrying
//! the command's `id`; asynchronous events (`{"event": ...}`) may arrive in between and are kept
//! aside. Replies are parsed with checks: no bytes from the socket make this panic.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

/// Longest line accepted from QEMU.
const MAX_LINE: u64 = 4 << 20;
/// How many unconsumed events are kept.
const MAX_EVENTS: usize = 256;

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket could not be connected, read or written.
    #[error("QMP socket I/O failed")]
    Io(#[source] std::io::Error),
    /// The server closed the connection.
    #[error("QEMU closed the QMP connection")]
    Closed,
    /// A line longer than this client accepts.
    #[error("QMP message longer than {MAX_LINE} bytes")]
    TooLong,
    /// A line that is not a JSON object.
    #[error("QMP message is not JSON: {line}")]
    NotJson {
        /// The offending line (shortened).
        line: String,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// Valid JSON that is not what QMP sends at this point.
    #[error("unexpected QMP message: {0}")]
    Unexpected(String),
    /// QEMU answered the command with an error.
    #[error("QEMU refused `{command}`: {class}: {desc}")]
    Command {
        /// The command sent.
        command: String,
        /// QMP error class, e.g. `GenericError`.
        class: String,
        /// QEMU's description.
        desc: String,
    },
}

/// The guest's run state as `query-status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    /// Whether the vCPUs are running.
    pub running: bool,
    /// QEMU's state name: `running`, `paused`, `shutdown`, `debug`, ...
    pub status: String,
}

/// An asynchronous event QEMU sent while a command was pending.
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    /// Event name, e.g. `STOP`, `RESUME`, `SHUTDOWN`.
    pub name: String,
    /// Its `data` member (`null` when absent).
    pub data: Value,
}

/// A connected, negotiated QMP session.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    events: Vec<QmpEvent>,
}

impl Qmp {
    /// Connects to the unix socket at `path`, reads the greeting and negotiates capabilities.
    /// `timeout` bounds every later read and write.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        Qmp::from_stream(UnixStream::connect(path).map_err(QmpError::Io)?, timeout)
    }

    /// Like [`Qmp::connect`] over an already connected stream.
    pub fn from_stream(stream: UnixStream, timeout: Duration) -> Result<Qmp, QmpError> {
        stream.set_read_timeout(Some(timeout)).map_err(QmpError::Io)?;
        stream.set_write_timeout(Some(timeout)).map_err(QmpError::Io)?;
        let writer = stream.try_clone().map_err(QmpError::Io)?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer, next_id: 1, events: Vec::new() };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Unexpected(format!("expected the QMP greeting, got {greeting}")));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Sends `command` with optional `arguments` and returns the `return` value of its reply.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "execute": command, "id": id });
        if let (Some(args), Some(obj)) = (arguments, request.as_object_mut()) {
            obj.insert("arguments".into(), args);
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(QmpError::Io)?;
        loop {
            let message = self.read_message()?;
            if let Some(name) = message.get("event") {
                self.push_event(name, &message);
                continue;
            }
            if message.get("id").and_then(Value::as_u64) != Some(id) {
                // A reply to some earlier, abandoned request: not ours.
                continue;
            }
            if let Some(ret) = message.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = message.get("error") {
                let text = |key| err.get(key).and_then(Value::as_str).unwrap_or("?").to_string();
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
            return Err(QmpError::Unexpected(format!("reply without return or error: {message}")));
        }
    }

    /// Pauses the guest's vCPUs.
    pub fn stop(&mut self) -> Result<(), QmpError> {
        self.execute("stop", None).map(drop)
    }

    /// Resumes the guest's vCPUs.
    pub fn cont(&mut self) -> Result<(), QmpError> {
        self.execute("cont", None).map(drop)
    }

    /// The guest's run state.
    pub fn query_status(&mut self) -> Result<VmStatus, QmpError> {
        let ret = self.execute("query-status", None)?;
        let running = ret.get("running").and_then(Value::as_bool);
        let status = ret.get("status").and_then(Value::as_str);
        match (running, status) {
            (Some(running), Some(status)) => Ok(VmStatus { running, status: status.to_string() }),
            _ => Err(QmpError::Unexpected(format!("query-status returned {ret}"))),
        }
    }

    /// Asks the guest to power down through ACPI (the guest may ignore it).
    pub fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown", None).map(drop)
    }

    /// Makes QEMU exit at once. QEMU may close the socket before or after replying; both are
    /// success.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed) => Ok(()),
            Err(QmpError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs a human monitor command (e.g. `info mtree -f`) and returns its text output.
    pub fn human_monitor_command(&mut self, command_line: &str) -> Result<String, QmpError> {
        let ret = self.execute("human-monitor-command", Some(json!({ "command-line": command_line })))?;
        ret.as_str().map(str::to_string).ok_or_else(|| QmpError::Unexpected(format!("HMP returned {ret}")))
    }

    /// Events received so far and not yet taken, oldest first.
    pub fn take_events(&mut self) -> Vec<QmpEvent> {
        std::mem::take(&mut self.events)
    }

    fn push_event(&mut self, name: &Value, message: &Value) {
        if self.events.len() == MAX_EVENTS {
            self.events.remove(0);
        }
        let name = name.as_str().unwrap_or("?").to_string();
        self.events.push(QmpEvent { name, data: message.get("data").cloned().unwrap_or(Value::Null) });
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        loop {
            let mut line = Vec::new();
            let n = (&mut self.reader).take(MAX_LINE).read_until(b'\n', &mut line).map_err(QmpError::Io)?;
            if n == 0 {
                return Err(QmpError::Closed);
            }
            if !line.ends_with(b"\n") && n as u64 == MAX_LINE {
                return Err(QmpError::TooLong);
            }
            if let Some(message) = parse_message(&line)? {
                return Ok(message);
            }
        }
    }
}

/// Parses one line from QEMU: `Ok(None)` for a blank line, otherwise the JSON object. Never
/// panics (public for fuzzing).
pub fn parse_message(line: &[u8]) -> Result<Option<Value>, QmpError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|source| QmpError::NotJson { line: text.chars().take(200).collect(), source })?;
    if !value.is_object() {
        return Err(QmpError::Unexpected(format!("not a JSON object: {}", shorten(&value))));
    }
    Ok(Some(value))
}

fn shorten(value: &Value) -> String {
    value.to_string().chars().take(200).collect()
}

#[cfg(test)]
#[path = "qmp_tests.rs"]
mod tests;
