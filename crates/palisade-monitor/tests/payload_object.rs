//! The embedded payload is kernel-safe: disassembled with binutils' objdump, it uses no x87,
//! MMX, SSE or AVX register and no red zone below the stack pointer; its only imports are the
//! documented kernel symbols. Needs objdump (binutils).

use std::process::Command;

use palisade_monitor::elf::Object;
use palisade_monitor::payload::OBJECT;

fn disassembly() -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload.o");
    std::fs::write(&path, OBJECT).unwrap();
    let out = Command::new("objdump").arg("-d").arg("--no-show-raw-insn").arg(&path).output().expect("run objdump");
    assert!(out.status.success(), "objdump: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_payload_uses_no_fpu_simd_register() {
    let asm = disassembly();
    assert!(asm.contains("<palisade_handle>:") && asm.contains("<palisade_trampoline>:"), "{asm}");

    let bad: Vec<&str> = asm
        .lines()
        .filter(|l| {
            ["%xmm", "%ymm", "%zmm", "%mm", "%st", "fxsave", "xsave", "ldmxcsr", "vzeroupper", "emms"]
                .iter()
                .any(|r| l.contains(r))
        })
        .collect();
    assert!(bad.is_empty(), "FPU/SIMD use in the payload:\n{}", bad.join("\n"));
}

#[test]
fn the_payload_writes_nothing_below_its_stack_pointer() {
    // A red zone would show as stores to negative offsets from %rsp.
    let asm = disassembly();
    let red: Vec<&str> = asm.lines().filter(|l| l.contains("-0x") && l.contains("(%rsp)")).collect();
    assert!(red.is_empty(), "red-zone accesses:\n{}", red.join("\n"));
}

#[test]
fn the_payload_imports_only_the_documented_kernel_symbols() {
    let obj = Object::parse(OBJECT).unwrap();
    let documented = include_str!("../payload/monitor.c");
    for name in obj.imports() {
        assert!(documented.contains(&format!(" *   {name}")), "import {name} is not in monitor.c's header list");
    }
}
