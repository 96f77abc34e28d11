//! Fetching Debian packages with apt and unpacking them into a cache, without installing them.
//!
//! Unpacking goes to a fresh temporary directory that is renamed into place, so concurrent
//! fetches of the same package cannot see a half-unpacked tree: whoever renames first wins and
//! the others use its result.

use std::path::{Path, PathBuf};

use palisade_host::{RunOptions, ToolError};

use crate::error::GuestError;

/// Marker written inside an unpacked package once unpacking completed.
const UNPACKED_MARKER: &str = ".palisade-unpacked";

/// Runs `argv` (in `cwd` if given) in the C locale, as its output is parsed, and returns its
/// standard output; a non-zero exit is an error carrying standard error.
pub(crate) fn run(argv: &[&str], cwd: Option<&Path>) -> Result<String, ToolError> {
    let options = RunOptions { cwd, env: &[("LC_ALL", "C")], ..RunOptions::default() };
    let out = palisade_host::run_with(argv, &options)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first `Depends:` of `package` whose name starts with `prefix`, as `apt-cache depends`
/// reports it (for a metapackage: the package it currently stands for).
pub(crate) fn resolve_dependency(package: &str, prefix: &str) -> Result<String, GuestError> {
    let resolve_err = |detail: String| GuestError::AptResolve { package: package.to_string(), detail };
    let out = run(&["apt-cache", "depends", package], None).map_err(|e| {
        resolve_err(format!(
            "`apt-cache depends` failed ({}); are the package lists there (`apt-get update`)?",
            palisade_host::chain(&e)
        ))
    })?;
    parse_depends(&out, prefix).ok_or_else(|| {
        resolve_err(format!("no dependency named `{prefix}*` in the output of `apt-cache depends`: {}", out.trim()))
    })
}

/// The names of the packages apt knows that start with `prefix` (`apt-cache pkgnames`).
pub(crate) fn package_names(prefix: &str) -> Result<Vec<String>, GuestError> {
    let out = run(&["apt-cache", "pkgnames", prefix], None).map_err(|e| GuestError::AptResolve {
        package: format!("{prefix}*"),
        detail: format!(
            "`apt-cache pkgnames` failed ({}); are the package lists there (`apt-get update`)?",
            palisade_host::chain(&e)
        ),
    })?;
    Ok(out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
}

fn parse_depends(apt_cache_output: &str, prefix: &str) -> Option<String> {
    apt_cache_output.lines().find_map(|line| {
        let name = line.trim().strip_prefix("Depends:")?.trim();
        (name.starts_with(prefix) && !name.contains(char::is_whitespace)).then(|| name.to_string())
    })
}

/// Returns `cache/package`, downloading the package with `apt-get download` and unpacking it
/// with `dpkg-deb -x` unless an earlier call already did.
pub(crate) fn fetch_unpacked(package: &str, cache: &Path) -> Result<PathBuf, GuestError> {
    let dest = cache.join(package);
    if dest.join(UNPACKED_MARKER).is_file() {
        tracing::debug!(package, dir = %dest.display(), "package already unpacked");
        return Ok(dest);
    }
    std::fs::create_dir_all(cache).map_err(|e| GuestError::io("create the cache directory", cache, e))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".{package}-"))
        .tempdir_in(cache)
        .map_err(|e| GuestError::io("create a temporary directory in", cache, e))?;
    let started = std::time::Instant::now();
    run(&["apt-get", "download", "-q", package], Some(work.path())).map_err(|e| match e {
        ToolError::Failed { .. } => GuestError::AptDownload { package: package.to_owned(), source: e },
        other => GuestError::Tool(other),
    })?;
    let deb = find_deb(work.path(), package)?;
    let tree = work.path().join("tree");
    let (deb_str, tree_str) = (deb.to_string_lossy(), tree.to_string_lossy());
    run(&["dpkg-deb", "-x", &deb_str, &tree_str], None)?;
    let deb_name = deb.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let marker = tree.join(UNPACKED_MARKER);
    std::fs::write(&marker, format!("{deb_name}\n")).map_err(|e| GuestError::io("write", &marker, e))?;
    match std::fs::rename(&tree, &dest) {
        Ok(()) => {}
        // Someone else finished first; theirs is as good as ours.
        Err(_) if dest.join(UNPACKED_MARKER).is_file() => {}
        Err(e) => return Err(GuestError::io("move the unpacked package to", &dest, e)),
    }
    tracing::info!(package, deb = deb_name, elapsed = ?started.elapsed(), "fetched and unpacked Debian package");
    Ok(dest)
}

fn find_deb(dir: &Path, package: &str) -> Result<PathBuf, GuestError> {
    let entries = std::fs::read_dir(dir).map_err(|e| GuestError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| GuestError::io("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{package}_")) && name.ends_with(".deb") {
            return Ok(entry.path());
        }
    }
    Err(GuestError::MissingFile { what: "the downloaded .deb", path: dir.join(format!("{package}_*.deb")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metapackage_dependency_is_read_from_apt_cache_output() {
        let out = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n  Recommends: foo\n";

        assert_eq!(parse_depends(out, "linux-image-").as_deref(), Some("linux-image-6.1.0-56-cloud-amd64"));
        assert_eq!(parse_depends(out, "linux-headers-"), None);
        assert_eq!(parse_depends("E: No packages found", "linux-image-"), None);
    }

    #[test]
    fn a_failing_command_reports_its_stderr() {
        let err = run(&["sh", "-c", "echo nope >&2; exit 3"], None).unwrap_err();
        let ToolError::Failed { stderr, status, .. } = err else { panic!("{err:?}") };
        assert_eq!(stderr, "nope");
        assert_eq!(status.code(), Some(3));
        assert!(matches!(run(&["/nonexistent/tool"], None), Err(ToolError::Spawn { .. })));
    }

    #[test]
    fn tools_run_in_the_c_locale_and_the_directory_given() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();

        let out = run(&["sh", "-c", "echo $LC_ALL; pwd"], Some(&dir)).unwrap();

        assert_eq!(out, format!("C\n{}\n", dir.display()));
    }
}
