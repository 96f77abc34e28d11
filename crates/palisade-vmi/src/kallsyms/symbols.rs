//! The recovered symbol table: lookups by name, prefix and address, and /proc/kallsyms output.

use std::fmt;
use std::io;

use super::PhysAnchor;
use crate::{Gpa, Gva};

/// A kernel symbol's value as kallsyms stores it: a kernel virtual address, or for absolute
/// per-cpu symbols an offset into the per-cpu area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SymbolAddr(pub u64);

/// One kernel symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Its value.
    pub addr: SymbolAddr,
    /// Its type letter as /proc/kallsyms shows it (`T`, `t`, `D`, `A`...).
    pub kind: char,
    /// Its name.
    pub name: String,
}

impl fmt::Display for Symbol {
    /// The symbol as a /proc/kallsyms line (without the newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x} {} {}", self.addr.0, self.kind, self.name)
    }
}

/// How the kallsyms address table was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressLayout {
    /// `kallsyms_offsets` (`s32`) relative to `kallsyms_relative_base`.
    Relative {
        /// The stored (already relocated) base.
        relative_base: u64,
        /// CONFIG_KALLSYMS_ABSOLUTE_PERCPU: non-negative offsets are absolute values.
        absolute_percpu: bool,
    },
    /// `kallsyms_addresses` (`unsigned long` each), as before 4.6 and on some arches.
    Absolute,
}

/// Where the tables were found and how they were encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableLayout {
    /// The address table's encoding.
    pub addresses: AddressLayout,
    /// `kallsyms_offsets`/`kallsyms_addresses`.
    pub address_table: Gpa,
    /// `kallsyms_names` (`kallsyms_num_syms` is 8 bytes before it).
    pub names: Gpa,
    /// `kallsyms_markers`.
    pub markers: Gpa,
    /// Bytes per marker: 8 (`unsigned long`) or 4 (`u32`).
    pub marker_width: u8,
    /// `kallsyms_seqs_of_names`, when it sits between markers and token table.
    pub seqs_of_names: Option<Gpa>,
    /// `kallsyms_token_table`.
    pub token_table: Gpa,
    /// `kallsyms_token_index`.
    pub token_index: Gpa,
}

/// The kernel's symbol table and where the kernel sits, recovered from guest memory.
#[derive(Clone, Debug)]
pub struct KernelSymbols {
    pub(crate) symbols: Vec<Symbol>,
    /// Indexes into `symbols`, sorted by name (then table order).
    pub(crate) by_name: Vec<u32>,
    pub(crate) virt_base: Gva,
    pub(crate) phys_base: Gpa,
    pub(crate) layout: TableLayout,
    pub(crate) anchor: PhysAnchor,
}

/// The link-time address of `_text` on x86-64 without KASLR.
pub const DEFAULT_TEXT: u64 = 0xffff_ffff_8100_0000;

impl KernelSymbols {
    pub(crate) fn new(
        symbols: Vec<Symbol>,
        virt_base: Gva,
        phys_base: Gpa,
        layout: TableLayout,
        anchor: PhysAnchor,
    ) -> Self {
        let mut by_name: Vec<u32> = (0..symbols.len() as u32).collect();
        by_name.sort_by(|&a, &b| symbols[a as usize].name.cmp(&symbols[b as usize].name));
        KernelSymbols { symbols, by_name, virt_base, phys_base, layout, anchor }
    }

    /// The same symbols at the same bases (another copy of the same kernel's tables).
    pub(crate) fn same_kernel(&self, other: &KernelSymbols) -> bool {
        self.virt_base == other.virt_base && self.phys_base == other.phys_base && self.symbols == other.symbols
    }

    /// Runtime virtual address of `_text`.
    pub fn virt_base(&self) -> Gva {
        self.virt_base
    }

    /// Guest physical address of `_text`.
    pub fn phys_base(&self) -> Gpa {
        self.phys_base
    }

    /// KASLR displacement of the kernel image against 0xffffffff81000000.
    pub fn kaslr_slide(&self) -> i64 {
        self.virt_base.0.wrapping_sub(DEFAULT_TEXT) as i64
    }

    /// Where the tables were and how they were encoded.
    pub fn layout(&self) -> &TableLayout {
        &self.layout
    }

    /// The checks that tied the physical base to the virtual one.
    pub fn phys_anchor(&self) -> &PhysAnchor {
        &self.anchor
    }

    /// Every symbol in the kernel's table order (the order of /proc/kallsyms).
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// The first symbol (in table order) named exactly `name`.
    pub fn by_name<'a>(&'a self, name: &'a str) -> Option<&'a Symbol> {
        self.all_named(name).next()
    }

    /// Every symbol named exactly `name` (static symbols can repeat), in table order.
    pub fn all_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Symbol> + 'a {
        self.with_prefix(name).filter(move |s| s.name == name)
    }

    /// Every symbol whose name starts with `prefix`, in name order.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Symbol> + 'a {
        let from = self.by_name.partition_point(|&i| self.symbols[i as usize].name.as_str() < prefix);
        self.by_name[from..].iter().map(|&i| &self.symbols[i as usize]).take_while(move |s| s.name.starts_with(prefix))
    }

    /// The symbol covering `addr` and the offset into it: the last symbol at or below `addr`
    /// (like `kallsyms_lookup`), ignoring absolute per-cpu values below the kernel half.
    pub fn containing(&self, addr: Gva) -> Option<(&Symbol, u64)> {
        let end = self.symbols.partition_point(|s| s.addr.0 <= addr.0);
        let sym = self.symbols[..end].last()?;
        (sym.addr.0 >= 0xffff_8000_0000_0000).then(|| (sym, addr.0 - sym.addr.0))
    }

    /// Writes every symbol as /proc/kallsyms prints core-kernel symbols.
    pub fn write_proc_kallsyms(&self, out: &mut impl io::Write) -> io::Result<()> {
        for s in &self.symbols {
            writeln!(out, "{s}")?;
        }
        Ok(())
    }
}
