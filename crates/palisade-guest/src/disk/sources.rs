//! The apt sources a disk image is bootstrapped from: the host's own entries for the suite
//! (`/etc/apt/sources.list`, `sources.list.d/*.list` one-line entries and `*.sources` deb822
//! stanzas), so an image comes from the mirror the host already uses; Debian's own mirror if
//! the host has none for the suite.

use std::path::{Path, PathBuf};

use crate::error::GuestError;

/// Where apt keeps its sources.
const APT_DIR: &str = "/etc/apt";

/// One `deb` source as apt's configuration gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    uri: String,
    suites: Vec<String>,
    components: Vec<String>,
}

/// Where the lines came from, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The host's apt configuration (these files had entries for the suite).
    Host(Vec<PathBuf>),
    /// The host has no entry for the suite: Debian's mirror and its security archive.
    Debian,
}

/// `deb URI SUITE COMPONENTS...` lines for mmdebstrap: the host's sources for `suite` and its
/// `-updates`/`-security` suites, or Debian's mirror when it has none.
pub(crate) fn mirror_lines(suite: &str) -> Result<(Vec<String>, Origin), GuestError> {
    let mut lines = Vec::new();
    let mut origins = Vec::new();
    for path in source_files(Path::new(APT_DIR))? {
        let text = std::fs::read_to_string(&path).map_err(|e| GuestError::io("read", &path, e))?;
        let sources = if path.extension().is_some_and(|e| e == "sources") { deb822(&text) } else { one_line(&text) };
        let found = lines_for_suite(&sources, suite);
        if !found.is_empty() {
            origins.push(path);
        }
        for line in found {
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    if lines.is_empty() {
        return Ok((debian_lines(suite), Origin::Debian));
    }
    Ok((lines, Origin::Host(origins)))
}

/// Debian's mirror and security archive for `suite`.
fn debian_lines(suite: &str) -> Vec<String> {
    vec![
        format!("deb http://deb.debian.org/debian {suite} main"),
        format!("deb http://deb.debian.org/debian-security {suite}-security main"),
    ]
}

/// `sources.list` if present, then `sources.list.d/*.list` and `*.sources` in name order.
fn source_files(apt_dir: &Path) -> Result<Vec<PathBuf>, GuestError> {
    let mut files = Vec::new();
    let main = apt_dir.join("sources.list");
    if main.is_file() {
        files.push(main);
    }
    let dir = apt_dir.join("sources.list.d");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(GuestError::io("list", &dir, e)),
    };
    let mut listed = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| GuestError::io("list", &dir, e))?.path();
        let ext = path.extension().and_then(|e| e.to_str());
        if matches!(ext, Some("list" | "sources")) && path.is_file() {
            listed.push(path);
        }
    }
    listed.sort();
    files.extend(listed);
    Ok(files)
}

/// The `deb` entries of a one-line-style file (`deb [options] URI SUITE COMPONENT...`).
fn one_line(text: &str) -> Vec<Source> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line.strip_prefix("deb")?;
            if !rest.starts_with(char::is_whitespace) {
                return None; // `deb-src`
            }
            let mut rest = rest.trim_start();
            if rest.starts_with('[') {
                rest = &rest[rest.find(']')? + 1..];
            }
            let mut words = rest.split_whitespace();
            let uri = words.next()?.to_string();
            let suite = words.next()?.to_string();
            Some(Source { uri, suites: vec![suite], components: words.map(str::to_string).collect() })
        })
        .collect()
}

/// The enabled `deb` stanzas of a deb822 `.sources` file.
fn deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with(char::is_whitespace) {
                continue; // a continuation line (an inline key): no field this module reads
            }
            if let Some((name, value)) = line.split_once(':') {
                fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("");
        let words = |name: &str| field(name).split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let enabled = !field("enabled").eq_ignore_ascii_case("no");
        if !enabled || !words("types").iter().any(|t| t == "deb") {
            continue;
        }
        for uri in words("uris") {
            sources.push(Source { uri, suites: words("suites"), components: words("components") });
        }
    }
    sources
}

/// One line per source and suite of `suite`'s family (`bookworm`, `bookworm-updates`,
/// `bookworm-security`, the old `bookworm/updates`), http(s) mirrors with components only.
fn lines_for_suite(sources: &[Source], suite: &str) -> Vec<String> {
    let in_family = |s: &str| {
        s == suite || s.strip_prefix(suite).is_some_and(|rest| rest.starts_with('-') || rest.starts_with('/'))
    };
    let mut lines = Vec::new();
    for source in sources {
        let remote = source.uri.starts_with("http://") || source.uri.starts_with("https://");
        if !remote || source.components.is_empty() {
            continue;
        }
        for s in source.suites.iter().filter(|s| in_family(s)) {
            lines.push(format!("deb {} {s} {}", source.uri, source.components.join(" ")));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's `debian.sources`, as Debian 12's installer writes it.
    const DEBIAN_SOURCES: &str = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    #[test]
    fn deb822_stanzas_give_one_line_per_suite() {
        let lines = lines_for_suite(&deb822(DEBIAN_SOURCES), "bookworm");

        assert_eq!(
            lines,
            [
                "deb http://deb.debian.org/debian bookworm main",
                "deb http://deb.debian.org/debian bookworm-updates main",
                "deb http://deb.debian.org/debian-security bookworm-security main",
            ]
        );
        assert!(lines_for_suite(&deb822(DEBIAN_SOURCES), "trixie").is_empty());
    }

    #[test]
    fn disabled_source_only_and_foreign_stanzas_are_left_out() {
        let text = "Types: deb-src\nURIs: http://a/debian\nSuites: bookworm\nComponents: main\n\n\
                    Types: deb\nURIs: http://b/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n\
                    Types: deb deb-src\nURIs: https://c/debian http://d/debian\nSuites: bookworm\n\
                    Components: main contrib\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n Suites: sid\n .\n\n\
                    Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n";

        assert_eq!(
            lines_for_suite(&deb822(text), "bookworm"),
            ["deb https://c/debian bookworm main contrib", "deb http://d/debian bookworm main contrib"]
        );
    }

    #[test]
    fn one_line_entries_skip_options_comments_and_deb_src() {
        let text = "# deb http://old/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main non-free-firmware # note\n\
                    deb-src http://m/debian bookworm main\n\
                    deb http://security.debian.org/debian-security bookworm/updates main\n\
                    deb http://m/debian bookworm-backports main\n\
                    deb file:/srv/mirror bookworm main\n\
                    deb http://m/debian bookwormish main\n\
                    deb http://m/debian bookworm\n\
                    deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n";

        assert_eq!(
            lines_for_suite(&one_line(text), "bookworm"),
            [
                "deb http://m/debian bookworm main non-free-firmware",
                "deb http://security.debian.org/debian-security bookworm/updates main",
                "deb http://m/debian bookworm-backports main",
            ]
        );
    }

    #[test]
    fn the_host_files_are_read_in_order_and_a_missing_directory_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(source_files(dir.path()).unwrap().is_empty());
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        for name in ["b.sources", "a.list", "c.list.disabled", "sources.list"] {
            let path = if name == "sources.list" {
                dir.path().join(name)
            } else {
                dir.path().join("sources.list.d").join(name)
            };
            std::fs::write(path, "").unwrap();
        }

        let names: Vec<String> = source_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();

        assert_eq!(names, ["sources.list", "sources.list.d/a.list", "sources.list.d/b.sources"]);
        assert_eq!(debian_lines("bookworm")[1], "deb http://deb.debian.org/debian-security bookworm-security main");
    }
}
