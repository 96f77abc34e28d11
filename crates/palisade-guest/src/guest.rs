//! A running QEMU guest: start, watch its serial ports, pause/resume over QMP, stop.
//!
//! Everything a guest owns lives in a private run directory (sockets, serial files, QEMU's log)
//! plus the RAM file under the RAM directory. [`Guest::stop`] — and `Drop`, for a guest that was
//! not stopped — ends QEMU (QMP `quit`, then SIGKILL) and removes all of it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::accel;
use crate::error::GuestError;
use crate::initramfs::KALLSYMS_END_MARKER;
use crate::machine::{q35_ram_layout, qemu_args, Accel, AccelChoice, AccelPolicy, GuestConfig, RamRegion, RunPaths};
use crate::qmp::Qmp;

const POLL: Duration = Duration::from_millis(20);
const QMP_TIMEOUT: Duration = Duration::from_secs(5);
const QUIT_GRACE: Duration = Duration::from_secs(5);

/// What the kernel prints when it panics (at KERN_EMERG, so even under `quiet`).
const KERNEL_PANIC: &str = "Kernel panic - not syncing";

/// How a guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestExit {
    /// QEMU's exit status. QEMU exits 0 on guest poweroff and also on a guest reboot under
    /// `-no-reboot`, so this alone does not tell a clean poweroff from a panic.
    pub status: ExitStatus,
    /// Whether the console shows a kernel panic.
    pub kernel_panic: bool,
}

impl GuestExit {
    /// QEMU exited successfully and the kernel did not panic.
    pub fn is_clean(&self) -> bool {
        self.status.success() && !self.kernel_panic
    }
}

/// A QEMU guest started by [`Guest::start`].
#[derive(Debug)]
pub struct Guest {
    name: String,
    child: Child,
    exit: Option<ExitStatus>,
    run_dir: Option<tempfile::TempDir>,
    paths: RunPaths,
    accel: AccelChoice,
    memory_bytes: u64,
    qmp: Option<Qmp>,
    started: Instant,
}

impl Guest {
    /// Validates `config`, chooses the accelerator (probing KVM once per process under
    /// [`AccelPolicy::Auto`]) and starts QEMU. Returns once QEMU answers on its QMP socket; the
    /// guest is then booting.
    pub fn start(config: &GuestConfig) -> Result<Guest, GuestError> {
        config.validate()?;
        let accel = match config.accel {
            AccelPolicy::Auto => accel::choose(config),
            AccelPolicy::Kvm => AccelChoice { accel: Accel::Kvm, reason: "KVM was requested".into() },
            AccelPolicy::Tcg => AccelChoice { accel: Accel::Tcg, reason: "TCG was requested".into() },
        };
        Guest::launch(config, accel)
    }

    /// Starts QEMU for `config` with `accel`, without validating or probing.
    pub(crate) fn launch(config: &GuestConfig, accel: AccelChoice) -> Result<Guest, GuestError> {
        let ram = config.ram_path();
        if ram.exists() {
            return Err(GuestError::RamFileExists(ram));
        }
        let run_dir = tempfile::Builder::new()
            .prefix(&format!("palisade-guest-{}-", config.name))
            .tempdir()
            .map_err(|e| GuestError::io("create a run directory in", std::env::temp_dir(), e))?;
        let paths = RunPaths::new(run_dir.path(), ram);
        let args = qemu_args(config, accel.accel, &paths);
        let log = std::fs::File::create(&paths.qemu_log).map_err(|e| GuestError::io("create", &paths.qemu_log, e))?;
        let log_err = log.try_clone().map_err(|e| GuestError::io("open", &paths.qemu_log, e))?;
        let command = format!("{} {}", config.qemu.display(), args.join(" "));
        tracing::debug!(%command, "starting QEMU");
        let child = Command::new(&config.qemu)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| GuestError::Spawn { command, source })?;
        let mut guest = Guest {
            name: config.name.clone(),
            child,
            exit: None,
            run_dir: Some(run_dir),
            paths,
            accel,
            memory_bytes: config.memory_bytes(),
            qmp: None,
            started: Instant::now(),
        };
        // On failure `guest` is dropped here, which kills QEMU and removes its files.
        guest.connect_qmp()?;
        tracing::info!(
            guest = %guest.name, pid = guest.pid(), accel = ?guest.accel.accel, reason = %guest.accel.reason,
            memory_mib = config.memory_mib, "guest started"
        );
        Ok(guest)
    }

    fn connect_qmp(&mut self) -> Result<&mut Qmp, GuestError> {
        let deadline = Instant::now() + QMP_TIMEOUT;
        while self.qmp.is_none() {
            match Qmp::connect(&self.paths.qmp, QMP_TIMEOUT) {
                Ok(qmp) => self.qmp = Some(qmp),
                Err(e) => {
                    self.check_running("QEMU to open its QMP socket")?;
                    if Instant::now() >= deadline {
                        return Err(GuestError::Qmp(e));
                    }
                    std::thread::sleep(POLL);
                }
            }
        }
        self.qmp.as_mut().ok_or_else(|| GuestError::Stopped(self.name.clone()))
    }

    /// The QMP session with this guest's QEMU (connected at start).
    pub fn qmp(&mut self) -> Result<&mut Qmp, GuestError> {
        self.ensure_not_stopped()?;
        self.connect_qmp()
    }

    /// The guest's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The accelerator in use and why it was chosen.
    pub fn accel(&self) -> &AccelChoice {
        &self.accel
    }

    /// Guest RAM in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// Where each piece of guest RAM sits in guest-physical space and in the RAM file.
    pub fn ram_layout(&self) -> Vec<RamRegion> {
        q35_ram_layout(self.memory_bytes)
    }

    /// The shared RAM file (`memory-backend-file`, `share=on`).
    pub fn ram_path(&self) -> &Path {
        &self.paths.ram
    }

    /// QEMU's QMP unix socket.
    pub fn qmp_path(&self) -> &Path {
        &self.paths.qmp
    }

    /// QEMU's gdbstub unix socket.
    pub fn gdb_path(&self) -> &Path {
        &self.paths.gdb
    }

    /// The file ttyS0 is written to.
    pub fn console_path(&self) -> &Path {
        &self.paths.console
    }

    /// The file ttyS1 (the kallsyms dump) is written to.
    pub fn kallsyms_path(&self) -> &Path {
        &self.paths.kallsyms
    }

    /// Time since QEMU was spawned.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Everything the guest wrote on ttyS0 so far (lossily decoded, `\r` removed).
    pub fn console_text(&self) -> Result<String, GuestError> {
        self.ensure_not_stopped()?;
        read_text(&self.paths.console)
    }

    /// Waits until a console line contains `pattern` and returns that line. Fails if QEMU exits
    /// first or `timeout` passes.
    pub fn wait_for_console(&mut self, pattern: &str, timeout: Duration) -> Result<String, GuestError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Note an exit before reading, so output written just before exiting still counts.
            let exited = self.try_exit()?.is_some();
            let text = self.console_text()?;
            if let Some(line) = text.lines().find(|l| l.contains(pattern)) {
                return Ok(line.to_string());
            }
            if exited {
                self.check_running(&format!("{pattern:?} on the console"))?;
            }
            if Instant::now() >= deadline {
                return Err(GuestError::Timeout { what: format!("{pattern:?} on the guest console"), after: timeout });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The guest's `/proc/kallsyms` as its init wrote it to ttyS1, waiting up to `timeout` for
    /// the end marker. Lines are returned as written, without the marker.
    pub fn kallsyms_dump(&mut self, timeout: Duration) -> Result<String, GuestError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_not_stopped()?;
            let exited = self.try_exit()?.is_some();
            // The dump is megabytes: look at its tail until the marker shows, then read it all.
            if tail_contains(&self.paths.kallsyms, KALLSYMS_END_MARKER)? {
                let text = read_text(&self.paths.kallsyms)?;
                if let Some(end) = text.find(KALLSYMS_END_MARKER) {
                    return Ok(text[..end].to_string());
                }
            }
            if exited {
                self.check_running("the kallsyms dump on ttyS1")?;
            }
            if Instant::now() >= deadline {
                return Err(GuestError::Timeout { what: "the end of the kallsyms dump".into(), after: timeout });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for QEMU to exit by itself (the guest powered off, or rebooted: `-no-reboot` turns
    /// a reboot, including the one `panic=-1` makes after a kernel panic, into an exit).
    /// The guest's files stay until [`Guest::stop`] or drop.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<GuestExit, GuestError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit()? {
                let kernel_panic = self.console_text()?.contains(KERNEL_PANIC);
                return Ok(GuestExit { status, kernel_panic });
            }
            if Instant::now() >= deadline {
                return Err(GuestError::Timeout { what: format!("guest {} to exit", self.name), after: timeout });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Ends the guest: QMP `quit`, then SIGKILL if QEMU is still there after a grace period;
    /// then removes the RAM file and the run directory. Idempotent.
    pub fn stop(&mut self) -> Result<(), GuestError> {
        if self.run_dir.is_none() {
            return Ok(());
        }
        let mut result = Ok(());
        if self.try_exit()?.is_none() {
            if let Err(e) = self.connect_qmp().and_then(|q| q.quit().map_err(GuestError::Qmp)) {
                tracing::warn!(guest = %self.name, error = %e, "QMP quit failed; killing QEMU");
            }
            if let Err(GuestError::Timeout { .. }) = self.wait_exit(QUIT_GRACE) {
                tracing::warn!(guest = %self.name, pid = self.pid(), "QEMU ignored quit; killing it");
                // An error here means the process is already gone, which is what we want.
                let _ = self.child.kill();
                let pid = self.pid();
                let status = self.child.wait().map_err(|source| GuestError::Wait { pid, source })?;
                self.exit = Some(status);
            }
        }
        self.qmp = None;
        match std::fs::remove_file(&self.paths.ram) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => result = Err(GuestError::io("remove", &self.paths.ram, e)),
        }
        if let Some(dir) = self.run_dir.take() {
            let path = dir.path().to_path_buf();
            dir.close().map_err(|e| GuestError::io("remove", path, e))?;
        }
        tracing::info!(guest = %self.name, status = ?self.exit, "guest stopped");
        result
    }

    /// QEMU's exit status if it has exited.
    fn try_exit(&mut self) -> Result<Option<ExitStatus>, GuestError> {
        if self.exit.is_none() {
            let pid = self.pid();
            self.exit = self.child.try_wait().map_err(|source| GuestError::Wait { pid, source })?;
        }
        Ok(self.exit)
    }

    fn check_running(&mut self, waiting_for: &str) -> Result<(), GuestError> {
        match self.try_exit()? {
            None => Ok(()),
            Some(status) => Err(GuestError::QemuExited {
                status: status.to_string(),
                waiting_for: waiting_for.to_string(),
                stderr_tail: self.qemu_log_tail(),
            }),
        }
    }

    fn qemu_log_tail(&self) -> String {
        let text = read_text(&self.paths.qemu_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn ensure_not_stopped(&self) -> Result<(), GuestError> {
        match self.run_dir {
            Some(_) => Ok(()),
            None => Err(GuestError::Stopped(self.name.clone())),
        }
    }

    /// The run directory (sockets, serial files), while the guest is not stopped.
    pub fn run_dir(&self) -> Option<PathBuf> {
        self.run_dir.as_ref().map(|d| d.path().to_path_buf())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(guest = %self.name, error = %e, "could not clean up the guest");
            // Last resort: never leave QEMU running behind a dropped handle.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether the last few hundred bytes of `path` contain `needle` (a missing file does not).
fn tail_contains(path: &Path, needle: &str) -> Result<bool, GuestError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(GuestError::io("open", path, e)),
    };
    let len = file.metadata().map_err(|e| GuestError::io("stat", path, e))?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(256))).map_err(|e| GuestError::io("seek in", path, e))?;
    let mut tail = Vec::with_capacity(256);
    file.read_to_end(&mut tail).map_err(|e| GuestError::io("read", path, e))?;
    Ok(tail.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

/// A serial log as text: lossy UTF-8 with `\r` removed. A missing file is empty (QEMU creates it
/// on start).
fn read_text(path: &Path) -> Result<String, GuestError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).replace('\r', "")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(GuestError::io("read", path, e)),
    }
}
