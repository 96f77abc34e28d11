//! Palisade's model: tenants, domains, subdomains, VMs, appliances and policies.
//!
//! Owns the policy-file format, its strict parser (errors name file, line and field) and the
//! validation of the whole desired state. Does not store anything, talk to OVS, or compile flows.

#![forbid(unsafe_code)]

pub mod anomaly;
pub mod document;
pub mod guest;
pub mod inventory;
mod locate;
pub mod monitor;
pub mod scan;
pub mod types;
pub mod validate;

pub use anomaly::AnomalySpec;
pub use document::{Document, FileError, ParsedFile};
pub use guest::{GuestKernel, GuestSpec};
pub use inventory::{Inventory, Kind, Object, ObjectKey};
pub use locate::LineIndex;
pub use monitor::{MonitorAction, MonitorRule, MonitorSpec, SyscallRef};
pub use scan::{PortItem, ScanKind, ScanProfile, ScanSpec, Schedule};
pub use types::{MacAddr, Name, PortName};

/// A file's objects merged into the current state, validated.
#[derive(Debug, Clone)]
pub struct Merge {
    /// The state after the merge.
    pub after: Inventory,
    /// The objects the file names (upserts), in file order.
    pub upserts: Vec<(ObjectKey, Object)>,
}

/// Parses `text` and merges its objects over `current` (upsert: objects the file does not
/// name are kept). Every problem is reported, each with file, line and field; on any problem
/// nothing is merged.
pub fn merge_file(file: &str, text: &str, current: &Inventory) -> Result<Merge, Vec<FileError>> {
    let parsed = ParsedFile::parse(file, text).map_err(|e| vec![e])?;
    let objects = inventory::FileObjects::from_document(&parsed.document)
        .map_err(|(path, message)| vec![parsed.error_at(&path, message)])?;
    let mut after = current.clone();
    let mut origins = std::collections::BTreeMap::new();
    let mut upserts = Vec::new();
    for (key, obj, path) in objects.objects {
        after.objects.insert(key.clone(), obj.clone());
        origins.insert(key.clone(), path);
        upserts.push((key, obj));
    }
    let problems = validate::validate(&after);
    if problems.is_empty() {
        return Ok(Merge { after, upserts });
    }
    Err(problems
        .into_iter()
        .map(|p| match origins.get(&p.key) {
            Some(path) => {
                let field = if p.field.is_empty() { path.clone() } else { format!("{path}.{}", p.field) };
                parsed.error_at(&field, p.message)
            }
            None => FileError {
                file: file.to_owned(),
                line: None,
                field: format!("{} (already stored)", p.key),
                message: format!(
                    "{}{}",
                    if p.field.is_empty() { String::new() } else { format!("{}: ", p.field) },
                    p.message
                ),
            },
        })
        .collect())
}
