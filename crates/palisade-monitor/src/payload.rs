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

/// Resolves one import: a global symbol of that name, else a unique local one (aliases tried
/// in order).
pub fn resolve_import(symbols: &KernelSymbols, name: &str) -> Result<u64, ImportError> {
    let single = [name];
    let names: &[&str] = ALIASES.iter().find(|(n, _)| *n == name).map_or(&single[..], |(_, alts)| alts);
    for n in names {
        let all: Vec<_> = symbols.all_named(n).collect();
        if let Some(global) = all.iter().find(|s| s.kind.is_ascii_uppercase()) {
            return Ok(global.addr.0);
        }
        match all.as_slice() {
            [] => continue,
            [one] => return Ok(one.addr.0),
            many => return Err(ImportError::Ambiguous { name: (*n).to_owned(), count: many.len() }),
        }
    }
    Err(ImportError::Missing(name.to_owned()))
}
