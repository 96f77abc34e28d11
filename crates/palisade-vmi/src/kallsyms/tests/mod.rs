//! Synthetic table sets in fake guest memory: every layout variant decodes exactly; decoys are
//! rejected with the check that failed; mutated tables never panic.

mod build;

use super::{recover, recover_all, AddressLayout, KallsymsError, Reject, SymbolAddr};
use crate::paging::TranslateError;
use crate::{FakeMemory, Gpa, Gva, PhysMemory};
use build::{Addrs, Image, Spec, MEM, TABLES};

const SLIDE: u64 = 0x2a0_0000;
const PBASE: u64 = 0x40_0000;

fn image(percpu: bool) -> Image {
    let names = build::names(700, 7);
    let extra: Vec<(u64, u8, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (0x1_0000 + 0x40 * i as u64, if i % 3 == 0 { b't' } else { b'T' }, n.as_str()))
        .collect();
    Image::new(SLIDE, PBASE, percpu, &extra)
}

fn debian_6_1() -> Spec {
    Spec { addrs: Addrs::Relative { absolute_percpu: true }, seqs: true, new_order: false, marker_width: 4 }
}

/// Recovers and checks every symbol, the bases and the slide against the image.
fn assert_recovers(img: &Image, spec: &Spec) -> super::KernelSymbols {
    let (mem, built) = img.memory(spec);
    let ks = recover(&mem).expect("the table set decodes");
    let mut want = img.syms.clone();
    want.sort_by_key(|s| s.addr);
    assert_eq!(ks.symbols().len(), want.len());
    for (got, want) in ks.symbols().iter().zip(&want) {
        assert_eq!((got.addr.0, got.kind, got.name.as_str()), (want.addr, char::from(want.kind), want.name.as_str()));
    }
    assert_eq!(ks.virt_base(), Gva(img.vbase));
    assert_eq!(ks.phys_base(), Gpa(img.pbase));
    assert_eq!(ks.kaslr_slide(), SLIDE as i64);
    assert_eq!(ks.layout().token_table, Gpa(img.pbase + TABLES + built.token_table as u64));
    assert_eq!(ks.layout().names, Gpa(img.pbase + TABLES + built.names as u64));
    assert_eq!(ks.layout().marker_width, spec.marker_width);
    assert_eq!(ks.layout().seqs_of_names.is_some(), spec.seqs && !spec.new_order);
    ks
}

#[test]
fn relative_absolute_percpu_with_seqs_and_u32_markers_as_debian_6_1() {
    let ks = assert_recovers(&image(true), &debian_6_1());
    assert_eq!(
        ks.layout().addresses,
        AddressLayout::Relative { relative_base: 0xffff_ffff_8100_0000 + SLIDE, absolute_percpu: true }
    );
    assert_eq!(ks.by_name("cpu_debug_store").map(|s| s.addr), Some(SymbolAddr(0x1000)));
}

#[test]
fn relative_without_seqs_with_unsigned_long_markers_as_5_x() {
    let spec = Spec { seqs: false, marker_width: 8, ..debian_6_1() };
    assert_recovers(&image(true), &spec);
}

#[test]
fn relative_without_absolute_percpu() {
    let spec = Spec { addrs: Addrs::Relative { absolute_percpu: false }, ..debian_6_1() };
    let ks = assert_recovers(&image(false), &spec);
    assert_eq!(
        ks.layout().addresses,
        AddressLayout::Relative { relative_base: 0xffff_ffff_8100_0000 + SLIDE, absolute_percpu: false }
    );
}

#[test]
fn absolute_addresses_as_centos_7_3_10() {
    let spec = Spec { addrs: Addrs::Absolute, seqs: false, new_order: false, marker_width: 8 };
    let ks = assert_recovers(&image(true), &spec);
    assert_eq!(ks.layout().addresses, AddressLayout::Absolute);
}

#[test]
fn new_order_of_6_4_with_tables_after_the_token_index() {
    let spec = Spec { new_order: true, ..debian_6_1() };
    let ks = assert_recovers(&image(true), &spec);
    assert!(ks.layout().address_table > ks.layout().token_index);
}

#[test]
fn big_symbol_names_use_two_byte_lengths() {
    // A name that compresses to more than 127 codes: 400 characters with hardly a repeated
    // pair, as Rust's long mangled names can be.
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
    let mut rng = palisade_rng::Rng::new(99);
    let long: String = (0..400).map(|_| char::from(alphabet[rng.below(alphabet.len())])).collect();
    let mut img = image(true);
    img.syms.push(build::In { addr: img.vbase + 0x9000, kind: b't', name: long.clone(), percpu: false });
    let (mem, built) = img.memory(&debian_6_1());
    let ks = recover(&mem).expect("decodes");
    assert_eq!(ks.by_name(&long).map(|s| s.addr.0), Some(img.vbase + 0x9000));
    assert_eq!(built.big_names, 1, "the long name was written with a two-byte length");
}

#[test]
fn lookups_by_name_prefix_and_address_and_proc_format() {
    let img = image(true);
    let (mem, _) = img.memory(&debian_6_1());
    let ks = recover(&mem).expect("decodes");
    let banner = ks.by_name("linux_banner").expect("listed");
    assert_eq!(banner.to_string(), format!("{:016x} D linux_banner", img.vbase + 0x1000));
    assert!(ks.with_prefix("do_").count() > 10);
    assert!(ks.with_prefix("do_").all(|s| s.name.starts_with("do_")));
    let (sym, off) = ks.containing(Gva(img.vbase + 0x1004)).expect("inside linux_banner");
    assert_eq!((sym.name.as_str(), off), ("linux_banner", 4));
    let mut out = Vec::new();
    ks.write_proc_kallsyms(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), ks.symbols().len());
    assert_eq!(text.lines().next(), Some("0000000000000000 A fixed_percpu_data"));
}

fn rejections(mem: &FakeMemory) -> Vec<Reject> {
    match recover(mem) {
        Err(KallsymsError::NoValidCandidate { rejected }) => rejected.into_iter().map(|r| r.reason).collect(),
        other => panic!("expected every candidate rejected, got {other:?}"),
    }
}

#[test]
fn empty_memory_has_no_token_table() {
    let mem = FakeMemory::new(MEM);
    assert!(matches!(recover(&mem), Err(KallsymsError::NoTokenTable { scanned: MEM })));
}

#[test]
fn a_lone_token_table_is_rejected() {
    let (mem, built) = image(true).memory(&debian_6_1());
    let full = mem_bytes(&mem);
    let lone = FakeMemory::new(MEM);
    let start = (PBASE + TABLES) as usize + built.token_table;
    lone.write(Gpa(0x80_0000), &full[start..(PBASE + TABLES) as usize + built.bytes.len()]).unwrap();
    let reasons = rejections(&lone);
    assert!(matches!(reasons[..], [Reject::NoMarkers | Reject::NoNames]), "{reasons:?}");
}

#[test]
fn planted_token_tables_beyond_the_limit_fail_loudly() {
    let (mem, built) = image(true).memory(&debian_6_1());
    let full = mem_bytes(&mem);
    let start = (PBASE + TABLES) as usize + built.token_table;
    let table = &full[start..(PBASE + TABLES) as usize + built.bytes.len()];
    for i in 0..64u64 {
        mem.write(Gpa(0x90_0000 + i * 0x1_0000), table).unwrap();
    }
    assert!(matches!(recover(&mem), Err(KallsymsError::TooManyCandidates { found: 65, limit: 64 })));
}

#[test]
fn a_corrupted_copy_is_rejected_and_the_real_table_wins() {
    let img = image(true);
    let (mem, built) = img.memory(&debian_6_1());
    let mut copy = built.bytes.clone();
    copy[built.names + 300] ^= 0x55; // one byte of one name
    mem.write(Gpa(0xa0_0000), &copy).unwrap();
    let ks = recover(&mem).expect("the intact set is used");
    assert_eq!(ks.layout().token_table, Gpa(PBASE + TABLES + built.token_table as u64));

    let alone = FakeMemory::new(MEM);
    alone.write(Gpa(0xa0_0000), &copy).unwrap();
    let reasons = rejections(&alone);
    assert!(
        matches!(
            reasons[..],
            [Reject::NoNames | Reject::BadName { .. } | Reject::MarkerMismatch { .. } | Reject::BadSeqs { .. }]
        ),
        "{reasons:?}"
    );
}

#[test]
fn an_intact_copy_outside_the_kernel_image_fails_the_physical_anchor() {
    let img = image(true);
    let (mem, built) = img.memory(&debian_6_1());
    mem.write(Gpa(0xa0_0000), &built.bytes).unwrap();
    let ks = recover(&mem).expect("only the copy inside the image anchors");
    assert_eq!(ks.phys_base(), Gpa(PBASE));
    assert_eq!(ks.phys_anchor().checks, ["phys_base", "linux_banner"]);
}

/// Two distinct valid kernels in one RAM, as after a reboot inside the same QEMU process: `a`
/// (the image of [`image`]) and `b` at another slide and physical base.
fn two_kernels() -> (FakeMemory, Image, Image) {
    let a = image(true);
    let (mem, _) = a.memory(&debian_6_1());
    let b = Image::new(SLIDE + 0x20_0000, 0x80_0000 + PBASE, true, &[(0x10, b'T', "other_kernel")]);
    let (mem_b, _) = b.memory(&debian_6_1());
    let bytes_b = mem_bytes(&mem_b);
    mem.write(Gpa(b.pbase), &bytes_b[b.pbase as usize..(b.pbase + 0x40_0000) as usize]).unwrap();
    (mem, a, b)
}

/// A KPTI pair of PGDs (kernel at `KERNEL_PGD`, user 4 KiB above, not mapping the kernel) whose
/// kernel half maps the 2 MiB page at `gva` to `gpa`.
const KERNEL_PGD: u64 = 0x1_0000;
fn map_2m(mem: &FakeMemory, gva: u64, gpa: u64) {
    const PRESENT_RW: u64 = 0b11;
    let (pdpt, pd) = (KERNEL_PGD + 0x2000, KERNEL_PGD + 0x3000);
    let set = |table: u64, shift: u32, entry: u64| {
        mem.write(Gpa(table + ((gva >> shift) & 0x1ff) * 8), &entry.to_le_bytes()).unwrap();
    };
    set(KERNEL_PGD, 39, pdpt | PRESENT_RW);
    set(pdpt, 30, pd | PRESENT_RW);
    set(pd, 21, gpa | PRESENT_RW | 1 << 7);
}

#[test]
fn two_valid_kernels_that_disagree_are_ambiguous() {
    let (mem, _, _) = two_kernels();
    assert!(matches!(recover(&mem), Err(KallsymsError::Ambiguous { ref token_tables }) if token_tables.len() == 2));
}

#[test]
fn recover_all_lists_each_distinct_kernel_once() {
    let (mem, a, b) = two_kernels();
    let (_, built) = a.memory(&debian_6_1());
    mem.write(Gpa(0xa0_0000), &built.bytes).unwrap(); // a copy of a's tables outside its image
    let all = recover_all(&mem).expect("both kernels decode");
    let bases: Vec<_> = all.iter().map(|k| (k.virt_base(), k.phys_base())).collect();
    assert_eq!(bases, [(Gva(a.vbase), Gpa(a.pbase)), (Gva(b.vbase), Gpa(b.pbase))]);
}

#[test]
fn only_the_kernel_the_page_tables_run_is_live() {
    let (mem, a, b) = two_kernels();
    let all = recover_all(&mem).unwrap();
    let (ka, kb) = (&all[0], &all[1]);
    // The live page tables run `a`, and map b's `_text` too, but to a's image: `b` is stale.
    map_2m(&mem, a.vbase, a.pbase);
    map_2m(&mem, b.vbase, a.pbase);
    let la57_off = 0;
    for cr3 in [KERNEL_PGD, KERNEL_PGD | 0x1000 | 0x5 /* user PGD, PCID 5 */, KERNEL_PGD | 1 << 63] {
        let space = ka.runs_under(&mem, cr3, la57_off).unwrap_or_else(|e| panic!("cr3 {cr3:#x}: {e}"));
        assert_eq!(space.root, Gpa(KERNEL_PGD));
        let stale = kb.runs_under(&mem, cr3, la57_off).expect_err("b is not live");
        assert_eq!(stale.walks.last().map(|w| w.outcome.as_ref().ok().copied()), Some(Some(Gpa(a.pbase))));
    }
    // The user PGD alone (`_text` unmapped there) is tried as well and reported.
    let err = kb.runs_under(&mem, KERNEL_PGD | 0x1000, la57_off).unwrap_err();
    assert_eq!(err.walks.len(), 2);
    assert!(matches!(err.walks[0].outcome, Err(TranslateError::NotPresent { .. })), "{err}");
    assert!(err.to_string().contains("does not map to the kernel's physical base"), "{err}");
}

#[test]
fn before_the_kernel_maps_itself_no_kernel_is_live() {
    let (mem, _, _) = two_kernels();
    for k in recover_all(&mem).unwrap() {
        // Firmware or a bootloader: page tables that map neither kernel (here: empty ones).
        assert!(k.runs_under(&mem, KERNEL_PGD, 0).is_err());
        // Garbage in CR3 (beyond RAM) is an error too, not a panic.
        assert!(k.runs_under(&mem, u64::MAX, 0).is_err());
    }
}

#[test]
fn mutated_tables_never_panic() {
    // A whole image in 4 MiB so that mutations reach every stage, anchor included.
    let small = 4 << 20;
    let img = Image::new(SLIDE, 0x20_0000, true, &[(0x10, b'T', "do_one_initcall")]);
    let (mem, built) = img.memory_sized(&debian_6_1(), small);
    assert!(recover(&mem).is_ok(), "the unmutated image decodes");
    let tables = (0x20_0000 + TABLES) as usize;
    let mut rng = palisade_rng::Rng::new(0x5eed);
    for _ in 0..100 {
        let mut bytes = built.bytes.clone();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next_u64() as u8;
        }
        mem.write(Gpa(tables as u64), &bytes).unwrap();
        let _ = recover(&mem);
    }
}

/// Writes the fuzz seeds: `cargo test -p palisade-vmi write_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz/seeds/kallsyms; run by hand when the encoder changes"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/kallsyms");
    std::fs::create_dir_all(&dir).unwrap();
    let names = build::names(300, 3);
    let extra: Vec<(u64, u8, &str)> =
        names.iter().enumerate().map(|(i, n)| (0x100 + 0x10 * i as u64, b'T', n.as_str())).collect();
    let img = Image::new(SLIDE, 0, true, &extra);
    let absolute = Spec { addrs: Addrs::Absolute, seqs: false, new_order: false, marker_width: 8 };
    for (file, spec) in [("debian-6.1", debian_6_1()), ("centos-7-3.10", absolute)] {
        std::fs::write(dir.join(file), build::build(&spec, &img.syms).bytes).unwrap();
    }
}

fn mem_bytes(mem: &FakeMemory) -> Vec<u8> {
    let mut all = vec![0u8; MEM as usize];
    mem.read(Gpa(0), &mut all).unwrap();
    all
}
