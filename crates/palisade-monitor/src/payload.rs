//! The monitoring payload built by `build.rs` (payload/monitor.c + payload/trampoline.S, gcc,
//! `ld -r`), and how its imports map to the guest kernel's symbols.

use palisade_vmi::kallsyms::KernelSymbols;

/// The relocatable object.
pub const OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/payload.o"));
/// The trampoline hooked sites call.
pub const TRAMPOLINE: &str = "palisade_trampoline";
/// The table-redirect stubs (16 bytes each).
pub const TABLE_STUBS: &str = "palisade_table_stubs";
/// The original handlers behind the stubs.
pub const TABLE_ORIG: &str = "palisade_table_orig";
/// The shared region's symbol.
pub const MEM_S: &str = "palisade_mem_s";

/// Alternatives for an import, tried in order: `current_task` became the first member of
/// `pcpu_hot` in 6.2, so on later kernels the per-CPU offset of `pcpu_hot` is the same thing.
const ALIASES: &[(&str, &[&str])] = &[("current_task", &["current_task", "pcpu_hot"])];

/// Why an import cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The kernel lacks it.
    #[error("the guest kernel has no symbol `{0}`, which the payload needs")]
    Missing(String),
    /// Several local symbols carry the name and none is global.
    #[error("the guest kernel has {count} local symbols named `{name}` and no global one")]
    Ambiguous {
        /// The name.
        name: String,
        /// How many.
        count: usize,
    },
}

/// A kernel symbol table, as far as import resolution needs it.
pub trait SymbolTable {
    /// Every (address, type letter) of symbols named `name`.
    fn named(&self, name: &str) -> Vec<(u64, char)>;
}

impl SymbolTable for KernelSymbols {
    fn named(&self, name: &str) -> Vec<(u64, char)> {
        self.all_named(name).map(|s| (s.addr.0, s.kind)).collect()
    }
}

/// Resolves one import: a global symbol of that name, else a unique local one (aliases tried
/// in order).
pub fn resolve_import(symbols: &impl SymbolTable, name: &str) -> Result<u64, ImportError> {
    let single = [name];
    let names: &[&str] = ALIASES.iter().find(|(n, _)| *n == name).map_or(&single[..], |(_, alts)| alts);
    for n in names {
        let all = symbols.named(n);
        if let Some((addr, _)) = all.iter().find(|(_, kind)| kind.is_ascii_uppercase()) {
            return Ok(*addr);
        }
        match all.as_slice() {
            [] => continue,
            [(addr, _)] => return Ok(*addr),
            many => return Err(ImportError::Ambiguous { name: (*n).to_owned(), count: many.len() }),
        }
    }
    Err(ImportError::Missing(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Fake(HashMap<&'static str, Vec<(u64, char)>>);
    impl SymbolTable for Fake {
        fn named(&self, name: &str) -> Vec<(u64, char)> {
            self.0.get(name).cloned().unwrap_or_default()
        }
    }

    #[test]
    fn globals_win_unique_locals_do_and_clashing_locals_are_refused() {
        let fake = Fake(HashMap::from([
            ("fget", vec![(0x10, 't'), (0x20, 'T')]),
            ("helper", vec![(0x30, 't')]),
            ("twice", vec![(0x40, 't'), (0x50, 't')]),
        ]));
        assert_eq!(resolve_import(&fake, "fget"), Ok(0x20));
        assert_eq!(resolve_import(&fake, "helper"), Ok(0x30));
        assert_eq!(resolve_import(&fake, "twice"), Err(ImportError::Ambiguous { name: "twice".into(), count: 2 }));
        let err = resolve_import(&fake, "file_path").unwrap_err();
        assert_eq!(err.to_string(), "the guest kernel has no symbol `file_path`, which the payload needs");
    }

    #[test]
    fn current_task_falls_back_to_pcpu_hot_on_newer_kernels() {
        let old = Fake(HashMap::from([("current_task", vec![(0x1fb80, 'A')]), ("pcpu_hot", vec![(0x2000, 'A')])]));
        let new = Fake(HashMap::from([("pcpu_hot", vec![(0x2000, 'A')])]));
        assert_eq!(resolve_import(&old, "current_task"), Ok(0x1fb80));
        assert_eq!(resolve_import(&new, "current_task"), Ok(0x2000));
        assert_eq!(
            resolve_import(&Fake(HashMap::new()), "current_task"),
            Err(ImportError::Missing("current_task".into()))
        );
    }
}
