//! The payload object through the ELF reader (`palisade-elf`), and the reader against damaged copies of it.

use crate::payload::OBJECT;
use palisade_elf::*;
use palisade_rng::Rng;

#[test]
fn the_payload_parses_with_its_sections_symbols_and_imports() {
    let obj = Object::parse(OBJECT).unwrap();

    assert!(obj.sections.iter().any(|s| s.name == ".text" && s.flags & SHF_EXECINSTR != 0));
    assert!(obj.sections.iter().any(|s| s.name == ".bss.palisade_mem_s" && s.kind == SHT_NOBITS));
    assert!(obj.symbols.iter().any(|s| s.name == "palisade_trampoline" && matches!(s.place, SymbolPlace::Section(_))));
    assert_eq!(
        obj.imports(),
        [
            "__get_task_comm",
            "__x64_sys_getpid",
            "__x64_sys_getuid",
            "current_task",
            "fget",
            "file_path",
            "fput",
            "ktime_get_real_fast_ns",
            "strncpy_from_user"
        ]
    );
    assert!(!obj.relocations.is_empty());
}

#[test]
fn wrong_kinds_of_file_are_named() {
    let mut b = OBJECT.to_vec();
    b[0] = b'X';
    assert_eq!(Object::parse(&b).unwrap_err(), ElfError::BadMagic);
    let mut b = OBJECT.to_vec();
    b[4] = 1;
    assert_eq!(Object::parse(&b).unwrap_err(), ElfError::NotElf64Le { class: 1, data: 1 });
    let mut b = OBJECT.to_vec();
    b[16] = 2; // ET_EXEC
    assert_eq!(Object::parse(&b).unwrap_err(), ElfError::NotRelocatable(2));
    let mut b = OBJECT.to_vec();
    b[18] = 3; // EM_386
    assert_eq!(Object::parse(&b).unwrap_err(), ElfError::NotX86_64(3));
    assert!(matches!(Object::parse(&OBJECT[..40]), Err(ElfError::OutOfBounds { .. })));
}

#[test]
fn a_section_table_past_the_end_is_out_of_bounds() {
    let mut b = OBJECT.to_vec();
    b[40..48].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
    assert!(matches!(Object::parse(&b), Err(ElfError::OutOfBounds { what: "section header table", .. })));
}

#[test]
fn seeded_mutations_and_truncations_never_panic() {
    // Seeded: failures reproduce.
    let mut rng = Rng::new(0x5eed_0005);
    let mut accepted = 0;
    for round in 0..4000 {
        let mut b = OBJECT.to_vec();
        let flips = 1 + rng.below(8);
        for _ in 0..flips {
            // Bias towards the headers and tables, where the structure is.
            let at = if rng.chance(0.5) { rng.below(64) } else { rng.below(b.len()) };
            b[at] = rng.next_u64() as u8;
        }
        if round % 5 == 0 {
            let keep = rng.below(b.len());
            b.truncate(keep);
        }
        if let Ok(obj) = Object::parse(&b) {
            accepted += 1;
            let _ = obj.imports();
            // The loader on whatever parsed must not panic either.
            let _ = crate::loader::load(&obj, 0xffff_ffff_c000_0000, &|_| Some(0xffff_ffff_8100_0000));
        }
    }
    assert!(accepted > 0, "no mutation parsed: the test would not exercise the loader");
}
