//! Running code inside a network namespace from this process, without `unsafe`.
//!
//! A dedicated thread enters the namespace with `setns(2)` (nix's safe wrapper) and runs the
//! closure there; sockets it opens belong to that namespace for their whole life, whichever
//! thread uses them later. The thread ends with the closure, so the namespace change never
//! leaks into other threads.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

/// Why code could not be run in a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened.
    #[error("could not open network namespace {path}")]
    Open {
        /// `/run/netns/<name>`.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `setns` failed.
    #[error("could not enter network namespace {path}")]
    Enter {
        /// The namespace.
        path: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// The thread could not be started.
    #[error("could not start a thread for network namespace {path}")]
    Thread {
        /// The namespace.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The closure panicked.
    #[error("the work inside network namespace {0} panicked")]
    Panicked(PathBuf),
}

/// Runs `f` on a new thread inside the network namespace at `path` and returns its result.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let file = File::open(path).map_err(|source| NetnsError::Open { path: path.to_owned(), source })?;
    let p = path.to_owned();
    let handle = std::thread::Builder::new()
        .name("palisade-netns".to_owned())
        .spawn(move || -> Result<T, NetnsError> {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter { path: p, source })?;
            Ok(f())
        })
        .map_err(|source| NetnsError::Thread { path: path.to_owned(), source })?;
    handle.join().map_err(|_| NetnsError::Panicked(path.to_owned()))?
}
