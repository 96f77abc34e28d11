use super::*;
use crate::elf::Object;
use crate::payload::{OBJECT, TRAMPOLINE};

const BASE: u64 = 0xffff_ffff_c012_3000;
const KTEXT: u64 = 0xffff_ffff_8100_0000;

fn kernel(name: &str) -> Option<u64> {
    match name {
        "current_task" => Some(0x1fb80), // a per-CPU offset ('A' symbol)
        _ => Some(KTEXT + name.len() as u64 * 0x10),
    }
}

#[test]
fn the_payload_is_laid_out_page_aligned_with_mem_s_last() {
    let obj = Object::parse(OBJECT).unwrap();

    let layout = Layout::new(&obj).unwrap();

    let text = layout.segment(Segment::Text);
    let mems = layout.segment(Segment::MemS);
    assert_eq!(text.start, 0);
    for r in layout.segments.values() {
        assert_eq!((r.start % PAGE, r.end % PAGE), (0, 0), "{r:?}");
    }
    assert_eq!(mems.end, layout.size);
    assert_eq!(mems.end - mems.start, crate::layout::REGION_SIZE);
    assert!(text.end <= layout.segment(Segment::Rodata).start);
}

#[test]
fn the_trampoline_calls_the_handler_and_per_cpu_accesses_keep_their_offset() {
    let obj = Object::parse(OBJECT).unwrap();

    let image = load(&obj, BASE, &kernel).unwrap();

    let tramp = image.export(TRAMPOLINE).unwrap();
    let handle = image.export("palisade_handle").unwrap();
    let code = &image.bytes[(tramp - BASE) as usize..];
    let calls: Vec<u64> = (0..80)
        .filter(|&i| code[i] == 0xe8)
        .map(|i| {
            let rel = i32::from_le_bytes([code[i + 1], code[i + 2], code[i + 3], code[i + 4]]);
            tramp.wrapping_add(i as u64 + 5).wrapping_add(rel as i64 as u64)
        })
        .collect();
    assert!(calls.contains(&handle), "no call to palisade_handle ({handle:#x}) in {calls:x?}");
    // `movq %gs:current_task, %reg` = 65 48 8b <modrm 0x04+8r> 25 <disp32>: the per-CPU offset.
    let text = &image.bytes[..image.layout.segment(Segment::Text).end as usize];
    let gs_loads =
        text.windows(9).filter(|w| w[0] == 0x65 && w[1] == 0x48 && w[2] == 0x8b && w[4] == 0x25).collect::<Vec<_>>();
    assert!(!gs_loads.is_empty());
    for w in gs_loads {
        assert_eq!(u32::from_le_bytes([w[5], w[6], w[7], w[8]]), 0x1fb80);
    }
    assert_eq!(image.imports.get("fget"), Some(&(KTEXT + 0x40)));
}

#[test]
fn a_missing_kernel_symbol_is_named() {
    let obj = Object::parse(OBJECT).unwrap();

    let err = load(&obj, BASE, &|name| if name == "file_path" { None } else { kernel(name) }).unwrap_err();

    assert_eq!(err, LoadError::MissingSymbol("file_path".into()));
    assert!(err.to_string().contains("`file_path`"));
}

#[test]
fn an_unknown_relocation_type_is_an_error_naming_it() {
    let obj = Object::parse(OBJECT).unwrap();
    let mut obj = obj.clone();
    obj.relocations[0].entries[0].kind = 9;

    let err = load(&obj, BASE, &kernel).unwrap_err();

    assert!(matches!(err, LoadError::UnsupportedRelocation { name: "R_X86_64_GOTPCREL", kind: 9, .. }), "{err}");
}

#[test]
fn a_32_bit_value_that_does_not_fit_is_refused() {
    let obj = Object::parse(OBJECT).unwrap();

    // Loaded in the lower half, sign-extended 32-bit addresses of mem-S cannot fit.
    let err = load(&obj, 0x0000_7f00_0000_0000, &kernel).unwrap_err();

    assert!(matches!(err, LoadError::Overflow { .. }), "{err}");
}

#[test]
fn an_unaligned_base_is_refused() {
    let obj = Object::parse(OBJECT).unwrap();
    assert_eq!(load(&obj, BASE + 8, &kernel).unwrap_err(), LoadError::Unaligned(BASE + 8));
}

#[test]
fn relocation_results_at_the_boundaries() {
    let mut b = vec![0u8; 16];
    // R_X86_64_32: 0xffff_ffff fits, 0x1_0000_0000 does not.
    apply(&mut b, "s", 16, 0, 0, 10, 0xffff_fffe, 1, 0).unwrap();
    assert_eq!(&b[..4], &[0xff; 4]);
    assert!(apply(&mut b, "s", 16, 0, 0, 10, 0xffff_ffff, 1, 0).is_err());
    // R_X86_64_32S: -2^31 fits, -2^31 - 1 does not.
    apply(&mut b, "s", 16, 0, 4, 11, 0xffff_ffff_8000_0000, 0, 0).unwrap();
    assert_eq!(&b[4..8], &[0, 0, 0, 0x80]);
    assert!(apply(&mut b, "s", 16, 0, 4, 11, 0xffff_ffff_7fff_ffff, 0, 0).is_err());
    // R_X86_64_PC32 = S + A - P.
    apply(&mut b, "s", 16, 0, 8, 2, 0x1000, -4, 0x2000).unwrap();
    assert_eq!(i32::from_le_bytes([b[8], b[9], b[10], b[11]]), 0x1000 - 4 - 0x2000);
    // Writing past the section.
    assert!(matches!(apply(&mut b, "s", 16, 0, 13, 2, 0, 0, 0), Err(LoadError::OutOfSection { .. })));
    // R_X86_64_NONE patches nothing.
    let before = b.clone();
    apply(&mut b, "s", 16, 0, 0, 0, 0xdead, 0, 0).unwrap();
    assert_eq!(b, before);
}
