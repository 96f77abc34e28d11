//! Why symbol recovery failed, and why each candidate table set was rejected.

use crate::{Gpa, MemoryError};

/// Symbol recovery failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum KallsymsError {
    /// Guest memory could not be read while scanning.
    #[error("scanning guest memory for the kallsyms tables failed")]
    Memory(#[source] MemoryError),
    /// No `kallsyms_token_table` + `kallsyms_token_index` pair exists anywhere in guest memory.
    #[error("no kallsyms_token_table/kallsyms_token_index pair in {scanned} bytes of guest memory")]
    NoTokenTable {
        /// Bytes of guest RAM scanned.
        scanned: u64,
    },
    /// More token-table candidates than are worth validating: the guest may be planting them
    /// to slow the monitor down.
    #[error("{found} kallsyms token-table candidates in guest memory, more than the {limit} validated")]
    TooManyCandidates {
        /// Candidates found.
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// Token tables were found, but no complete table set around any of them passed validation.
    #[error("{} kallsyms candidate(s) found, none passed validation (first: {})",
        .rejected.len(), first_rejection(.rejected))]
    NoValidCandidate {
        /// Every candidate and the check it failed.
        rejected: Vec<Rejection>,
    },
    /// More than one complete, valid table set exists and they disagree.
    #[error("{} valid kallsyms table sets disagree (token tables at {})",
        .token_tables.len(), list(.token_tables))]
    Ambiguous {
        /// Where each valid set's token table is.
        token_tables: Vec<Gpa>,
    },
}

fn first_rejection(rejected: &[Rejection]) -> String {
    rejected.first().map_or_else(String::new, |r| r.to_string())
}

fn list(gpas: &[Gpa]) -> String {
    gpas.iter().map(|g| format!("{:#x}", g.0)).collect::<Vec<_>>().join(", ")
}

/// One candidate table set (named by its token table) and the check it failed.
#[derive(Debug, thiserror::Error)]
#[error("candidate with token table at {token_table} rejected")]
pub struct Rejection {
    /// Where the candidate's `kallsyms_token_table` is.
    pub token_table: Gpa,
    /// The failed check.
    #[source]
    pub reason: Reject,
}

/// The validation check a candidate failed.
#[derive(Debug, thiserror::Error)]
pub enum Reject {
    /// Reading around the candidate left guest RAM or failed.
    #[error("guest memory around the candidate could not be read")]
    Memory(#[source] MemoryError),
    /// No strictly increasing `kallsyms_markers` array starting at 0 precedes the token table.
    #[error("no kallsyms_markers array precedes the token table")]
    NoMarkers,
    /// No `kallsyms_num_syms` + `kallsyms_names` pair decodes consistently with the markers.
    #[error("no kallsyms_num_syms/kallsyms_names pair is consistent with the markers")]
    NoNames,
    /// A name in `kallsyms_names` does not decode to a printable symbol.
    #[error("symbol {index} at names offset {offset} does not decode to a printable name")]
    BadName {
        /// Index of the symbol.
        index: usize,
        /// Its offset in the names stream.
        offset: u64,
    },
    /// A marker does not point at the start of its 256th name.
    #[error("kallsyms_markers[{index}] is {found}, but name {} starts at offset {expected}", .index * 256)]
    MarkerMismatch {
        /// Marker index.
        index: usize,
        /// Value stored.
        found: u64,
        /// Offset the names stream says.
        expected: u64,
    },
    /// `kallsyms_seqs_of_names` is not a permutation sorting the symbols by name.
    #[error("kallsyms_seqs_of_names entry {index} is not a name-sorted permutation of the symbols")]
    BadSeqs {
        /// First offending entry.
        index: usize,
    },
    /// No address table (offsets + relative base, or absolute addresses) next to the other
    /// tables decodes to sorted addresses with `_text` at the relative base.
    #[error("no address table next to the names decodes to sorted kernel addresses")]
    NoAddresses,
    /// More than one address table layout validates.
    #[error("both {0} and {1} address tables validate")]
    AmbiguousAddresses(&'static str, &'static str),
    /// A symbol every x86-64 kernel has is missing.
    #[error("the symbol {0} is missing from the decoded table")]
    MissingSymbol(&'static str),
    /// No 2 MiB-aligned placement of the kernel image around the tables passes the checks of
    /// `phys_base` and `linux_banner` (or neither symbol is listed).
    #[error("no placement of the kernel image around the tables has a matching phys_base and linux_banner")]
    NoPhysAnchor,
    /// Several placements of the kernel image pass the anchor checks.
    #[error("{placements} placements of the kernel image pass the physical-base checks")]
    PhysAmbiguous {
        /// How many.
        placements: usize,
    },
}
