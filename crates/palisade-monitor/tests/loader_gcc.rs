//! The loader on objects gcc builds here, from small assembly and C sources: each relocation
//! type's result bytes at its known offset, section placement, and the errors for a 32-bit
//! value that does not fit and an unsupported relocation type. Needs gcc (binutils).

use std::path::Path;
use std::process::Command;

use palisade_monitor::elf::Object;
use palisade_monitor::loader::{load, LoadError, Segment};

const BASE: u64 = 0xffff_ffff_c010_0000;
const EXT_FUNC: u64 = 0xffff_ffff_8123_4560;
const EXT_DATA: u64 = 0xffff_ffff_8234_5670;
const EXT_LOW: u64 = 0x1234_5678;

fn resolve(name: &str) -> Option<u64> {
    match name {
        "ext_func" => Some(EXT_FUNC),
        "ext_data" => Some(EXT_DATA),
        "ext_low" => Some(EXT_LOW),
        _ => None,
    }
}

/// Compiles `source` (named `file`, `.S` or `.c`) with `flags` into an object's bytes.
fn gcc(dir: &Path, file: &str, source: &str, flags: &[&str]) -> Vec<u8> {
    let src = dir.join(file);
    let obj = dir.join(format!("{file}.o"));
    std::fs::write(&src, source).unwrap();
    let out = Command::new("gcc").args(flags).arg("-c").arg(&src).arg("-o").arg(&obj).output().expect("run gcc");
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(obj).unwrap()
}

fn u32_at(b: &[u8], at: u64) -> u32 {
    u32::from_le_bytes(b[at as usize..at as usize + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(b[at as usize..at as usize + 8].try_into().unwrap())
}

const ASM: &str = r#"
	.text
	.globl start
start:
	call ext_func                  # 0x01 R_X86_64_PLT32 ext_func - 4
	.long ext_data - .             # 0x05 R_X86_64_PC32 ext_data
	movl $ext_low, %eax            # 0x0a R_X86_64_32 ext_low
	movq $ext_data, %rax           # 0x11 R_X86_64_32S ext_data
	.quad ext_func + 16            # 0x15 R_X86_64_64 ext_func + 16
	.quad local_rodata             # 0x1d R_X86_64_64 .rodata
	leaq local_rodata(%rip), %rax  # 0x28 R_X86_64_PC32 .rodata - 4
	.quad ext_func - .             # 0x2c R_X86_64_PC64 ext_func
	.section .rodata
local_rodata:
	.quad 0x1122334455667788
	.data
	.quad start                    # 0x00 R_X86_64_64 start
	.long ext_low + 4              # 0x08 R_X86_64_32 ext_low + 4
	.bss
	.zero 64
"#;

#[test]
fn every_relocation_type_writes_the_expected_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = gcc(dir.path(), "r.S", ASM, &[]);
    let obj = Object::parse(&bytes).unwrap();

    let image = load(&obj, BASE, &resolve).unwrap();

    let text = image.layout.segment(Segment::Text).start;
    let rodata = image.layout.segment(Segment::Rodata).start;
    let data = image.layout.segment(Segment::Data).start;
    assert_eq!((text, rodata, data), (0, 0x1000, 0x2000));
    let b = &image.bytes;
    let p = |off: u64| BASE + text + off;
    assert_eq!(u32_at(b, 0x01) as i32 as i64, EXT_FUNC as i64 - 4 - p(0x01) as i64, "PLT32");
    assert_eq!(u32_at(b, 0x05) as i32 as i64, EXT_DATA as i64 - p(0x05) as i64, "PC32");
    assert_eq!(u64::from(u32_at(b, 0x0a)), EXT_LOW, "32");
    assert_eq!(u32_at(b, 0x11) as i32 as i64 as u64, EXT_DATA, "32S");
    assert_eq!(u64_at(b, 0x15), EXT_FUNC + 16, "64 with addend");
    assert_eq!(u64_at(b, 0x1d), BASE + rodata, "64 against a section");
    assert_eq!(u32_at(b, 0x28) as i32 as i64, (BASE + rodata) as i64 - 4 - p(0x28) as i64, "PC32 to rodata");
    assert_eq!(u64_at(b, 0x2c), EXT_FUNC.wrapping_sub(p(0x2c)), "PC64");
    assert_eq!(u64_at(b, data), BASE + text, "64 in data");
    assert_eq!(u64::from(u32_at(b, data + 8)), EXT_LOW + 4, "32 in data");
    // The instruction bytes around the fields are the assembler's.
    assert_eq!((b[0], b[9], &b[0x0e..0x11]), (0xe8, 0xb8, &[0x48, 0xc7, 0xc0][..]));
    assert_eq!(u64_at(b, rodata), 0x1122_3344_5566_7788);
    assert_eq!(image.export("start"), Some(BASE));
    assert_eq!(image.imports.len(), 3);
}

#[test]
fn a_32_bit_field_that_cannot_hold_the_value_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = gcc(dir.path(), "o.S", ".text\nmovl $ext_data, %eax\n", &[]);
    let obj = Object::parse(&bytes).unwrap();

    let err = load(&obj, BASE, &resolve).unwrap_err();

    assert!(matches!(err, LoadError::Overflow { name: "R_X86_64_32", offset: 1, .. }), "{err}");
}

#[test]
fn a_relocation_type_the_loader_does_not_implement_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = gcc(dir.path(), "w.S", ".text\n.word ext_low\n", &[]);
    let obj = Object::parse(&bytes).unwrap();

    let err = load(&obj, BASE, &resolve).unwrap_err();

    assert!(matches!(err, LoadError::UnsupportedRelocation { kind: 12, .. }), "{err}");
    assert!(err.to_string().contains("R_X86_64_16"), "{err}");
}

#[test]
fn a_kernel_model_c_object_calls_its_import_and_addresses_its_string() {
    let dir = tempfile::tempdir().unwrap();
    let src = "extern void ext_func(const char *);\nint counter = 5;\n\
               void f(void) { counter++; ext_func(\"hello\"); }\n";
    let flags =
        ["-O2", "-ffreestanding", "-fno-pic", "-mcmodel=kernel", "-mno-red-zone", "-fno-asynchronous-unwind-tables"];
    let bytes = gcc(dir.path(), "c.c", src, &flags);
    let obj = Object::parse(&bytes).unwrap();

    let image = load(&obj, BASE, &resolve).unwrap();

    let b = &image.bytes;
    let text = image.layout.segment(Segment::Text);
    let hello = b.windows(6).position(|w| w == b"hello\0").expect("the string is in the image") as u64;
    assert!(image.layout.segment(Segment::Rodata).contains(&hello));
    let counter = image.export("counter").unwrap();
    assert!(image.layout.segment(Segment::Data).contains(&(counter - BASE)));
    assert_eq!(u32_at(b, counter - BASE), 5);
    let code = &b[text.start as usize..text.end as usize];
    // `mov $hello, %edi|%rdi` (32 or 32S) holds the string's address.
    let imm_hits = (0..code.len() - 4).filter(|&i| u32_at(code, i as u64) as i32 as i64 as u64 == BASE + hello).count();
    assert_eq!(imm_hits, 1, "the string's address appears once in the code");
    // A call or tail jump reaches ext_func.
    let reaches = (0..code.len() - 4).any(|i| {
        (code[i] == 0xe8 || code[i] == 0xe9)
            && (BASE + i as u64 + 5).wrapping_add(u32_at(code, i as u64 + 1) as i32 as i64 as u64) == EXT_FUNC
    });
    assert!(reaches, "no call to ext_func");
    // counter(%rip) is PC-relative: the end of the instruction (displacement, maybe an
    // immediate after it) plus the displacement is the variable.
    let rip_hits = (0..code.len() - 4)
        .filter(|&i| {
            [4u64, 5, 8].iter().any(|&end| {
                (BASE + i as u64 + end).wrapping_add(u32_at(code, i as u64) as i32 as i64 as u64) == counter
            })
        })
        .count();
    assert!(rip_hits >= 1, "no rip-relative access to counter");
}
