//! Builds the monitoring payload (payload/*.c, payload/*.S) with the system gcc into one
//! relocatable ELF object that the crate embeds, and checks the C mem-S layout against the Rust
//! mirror (src/layout_consts.rs) with `_Static_assert`s.

use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)]
mod layout {
    include!("src/layout_consts.rs");
}

/// Kernel-safe code generation: no FPU/SSE/AVX, no red zone, kernel code model, no PIC, no
/// jump tables (indirect jumps), no implicit libc calls, no stack protector or CET.
const CFLAGS: &[&str] = &[
    "-O2",
    "-std=gnu11",
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-mno-sse",
    "-mno-mmx",
    "-mno-avx",
    "-mpreferred-stack-boundary=3",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fcf-protection=none",
    "-fno-common",
    "-fno-jump-tables",
    "-fno-builtin",
    "-fno-tree-loop-distribute-patterns",
    "-nostdlib",
    "-Wall",
    "-Wextra",
    "-Werror",
];

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let payload = Path::new("payload");
    for f in ["shared.h", "monitor.c", "trampoline.S"] {
        println!("cargo:rerun-if-changed=payload/{f}");
    }
    println!("cargo:rerun-if-changed=src/layout_consts.rs");

    // The layout check: every constant of the Rust mirror against the C header.
    let mut check = String::from("#include <stddef.h>\n#include \"shared.h\"\n");
    for (expr, value) in layout::C_CHECKS {
        check.push_str(&format!(
            "_Static_assert((unsigned long long)({expr}) == {value}ULL, \"mem-S mirror: {expr} != {value}\");\n"
        ));
    }
    let check_c = out.join("layout_check.c");
    std::fs::write(&check_c, check).expect("write layout_check.c");
    gcc(&[&["-fsyntax-only", "-I"], &[payload.to_str().expect("utf-8 path")], &[check_c.to_str().expect("utf-8")]]);

    let monitor_o = out.join("monitor.o");
    let tramp_o = out.join("trampoline.o");
    let payload_o = out.join("payload.o");
    gcc(&[CFLAGS, &["-c", "-o", monitor_o.to_str().expect("utf-8"), "payload/monitor.c"]]);
    gcc(&[CFLAGS, &["-c", "-o", tramp_o.to_str().expect("utf-8"), "payload/trampoline.S"]]);
    // One relocatable object (ld -r): what the loader takes.
    gcc(&[
        &["-nostdlib", "-r", "-o"],
        &[payload_o.to_str().expect("utf-8")],
        &[monitor_o.to_str().expect("utf-8"), tramp_o.to_str().expect("utf-8")],
    ]);
}

fn gcc(args: &[&[&str]]) {
    let args: Vec<&str> = args.iter().flat_map(|a| a.iter().copied()).collect();
    let status = Command::new("gcc")
        .args(&args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run gcc (apt-get install gcc): {e}"));
    assert!(status.success(), "gcc {} failed", args.join(" "));
}
