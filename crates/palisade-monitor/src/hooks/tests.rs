use std::collections::BTreeMap;

use super::*;

/// A fake kernel: symbols and function bodies.
#[derive(Default)]
struct FakeKernel {
    symbols: BTreeMap<&'static str, u64>,
    code: BTreeMap<u64, Vec<u8>>,
}

impl KernelView for FakeKernel {
    fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }
    fn handlers(&self) -> BTreeSet<u64> {
        self.symbols.iter().filter(|(n, _)| n.starts_with("__x64_sys_")).map(|(_, a)| *a).collect()
    }
    fn function_bytes(&self, addr: u64, max: u64) -> Option<Vec<u8>> {
        self.code.get(&addr).map(|c| c.iter().take(max as usize).copied().collect())
    }
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.code.get(&addr).map(|c| c.iter().take(len).copied().collect())
    }
}

const READ: u64 = 0xffff_ffff_8120_0000;
const WRITE: u64 = 0xffff_ffff_8120_0100;
const SWITCH: u64 = 0xffff_ffff_8100_1000;
const ENTRY: u64 = 0xffff_ffff_8100_2000;
const TABLE: u64 = 0xffff_ffff_8200_0360;

fn branch(op: u8, from: u64, to: u64) -> Vec<u8> {
    let rel = (to as i64 - (from as i64 + 5)) as i32;
    let mut v = vec![op];
    v.extend_from_slice(&rel.to_le_bytes());
    v
}

fn kernel_with_switch() -> FakeKernel {
    let mut k = FakeKernel::default();
    k.symbols.extend([("__x64_sys_read", READ), ("__x64_sys_write", WRITE), ("x64_sys_call", SWITCH)]);
    k.symbols.extend([("sys_call_table", TABLE), ("do_syscall_64", ENTRY)]);
    // cmp $1,%edi; je -> jmp __x64_sys_write; jmp __x64_sys_read (tail calls, as gcc emits).
    let mut code = vec![0x83, 0xff, 0x01, 0x74, 0x05];
    code.extend(branch(0xe9, SWITCH + 5, READ));
    code.extend(branch(0xe9, SWITCH + 10, WRITE));
    k.code.insert(SWITCH, code);
    k.code.insert(ENTRY, branch(0xe8, ENTRY, SWITCH));
    k
}

#[test]
fn a_kernel_dispatching_through_x64_sys_call_gets_entry_calls() {
    let k = kernel_with_switch();

    let e = inspect(&k);

    assert_eq!(e.x64_sys_call, Some(SWITCH));
    assert_eq!(e.direct_handler_branches, 2);
    assert!(!e.entry_uses_table);
    assert_eq!(choose(&e), Ok(HookMethod::EntryCall));
}

#[test]
fn a_kernel_calling_through_the_table_gets_the_table_redirect() {
    let mut k = FakeKernel::default();
    k.symbols.extend([("__x64_sys_read", READ), ("sys_call_table", TABLE), ("do_syscall_64", ENTRY)]);
    // call *sys_call_table(,%rax,8): ff 14 c5 <disp32>
    let mut code = vec![0x48, 0x89, 0xc7, 0xff, 0x14, 0xc5];
    code.extend_from_slice(&(TABLE as u32).to_le_bytes());
    k.code.insert(ENTRY, code);

    let e = inspect(&k);

    assert_eq!((e.x64_sys_call, e.entry_uses_table), (None, true));
    assert_eq!(choose(&e), Ok(HookMethod::TableRedirect));
}

#[test]
fn missing_evidence_is_an_error_not_a_guess() {
    // x64_sys_call without any branch to a handler.
    let mut k = kernel_with_switch();
    k.code.insert(SWITCH, vec![0x90; 32]);
    assert!(matches!(choose(&inspect(&k)), Err(HookError::UnknownDispatch(_))));
    // A table nobody references.
    let mut k = FakeKernel::default();
    k.symbols.extend([("sys_call_table", TABLE), ("do_syscall_64", ENTRY)]);
    k.code.insert(ENTRY, vec![0xc3]);
    assert!(matches!(choose(&inspect(&k)), Err(HookError::UnknownDispatch(_))));
    // Nothing at all.
    assert!(matches!(choose(&inspect(&FakeKernel::default())), Err(HookError::UnknownDispatch(_))));
}

#[test]
fn fentry_sites_with_and_without_endbr64() {
    let plain = [0x0f, 0x1f, 0x44, 0x00, 0x00, 0x55, 0x48];
    assert_eq!(fentry_site("__x64_sys_read", READ, &plain), Ok(READ));
    let ibt = [0xf3, 0x0f, 0x1e, 0xfa, 0x0f, 0x1f, 0x44, 0x00, 0x00];
    assert_eq!(fentry_site("__x64_sys_read", READ, &ibt), Ok(READ + 4));
}

#[test]
fn a_site_that_is_not_a_nop_is_refused() {
    let patched = [0xe8, 1, 2, 3, 4, 0x55];
    assert!(matches!(fentry_site("__x64_sys_read", READ, &patched), Err(HookError::AlreadyPatched { .. })));
    let plain_code = [0x55, 0x48, 0x89, 0xe5, 0x90, 0x90];
    let err = fentry_site("__x64_sys_read", READ, &plain_code).unwrap_err();
    assert!(err.to_string().contains("__x64_sys_read"), "{err}");
    assert!(matches!(fentry_site("x", READ, &[]), Err(HookError::NoFentryNop { .. })));
}

#[test]
fn call_bytes_encode_rel32_and_refuse_what_is_out_of_reach() {
    let site = 0xffff_ffff_8120_0000u64;
    let tramp = 0xffff_ffff_c000_1000u64;
    let b = call_bytes(site, tramp).unwrap();
    assert_eq!(b[0], 0xe8);
    let rel = i32::from_le_bytes([b[1], b[2], b[3], b[4]]);
    assert_eq!(site.wrapping_add(5).wrapping_add(rel as i64 as u64), tramp);
    // Backwards too.
    let b = call_bytes(tramp, site).unwrap();
    let rel = i32::from_le_bytes([b[1], b[2], b[3], b[4]]);
    assert_eq!(tramp.wrapping_add(5).wrapping_add(rel as i64 as u64), site);
    assert!(matches!(call_bytes(site, 0xffff_8880_0000_0000), Err(HookError::OutOfReach { .. })));
}

fn sc(name: &str) -> Syscall {
    Syscall::by_name(name).unwrap()
}

#[test]
fn entry_call_targets_are_the_fentry_nops_and_patches_call_the_trampoline() {
    let mut k = kernel_with_switch();
    k.code.insert(READ, vec![0x0f, 0x1f, 0x44, 0x00, 0x00, 0x55, 0x48, 0x89, 0xe5]);
    let tramp = 0xffff_ffff_c000_0400;

    let t = targets(&k, HookMethod::EntryCall, &[sc("read")]).unwrap();
    let (site, bytes) = patch(HookMethod::EntryCall, 0, &t[0], tramp, 0).unwrap();

    assert_eq!((t[0].addr, t[0].original.as_slice()), (READ, &NOP5[..]));
    assert_eq!(site, READ);
    assert_eq!(bytes, call_bytes(READ, tramp).unwrap());
}

#[test]
fn table_targets_are_the_slots_holding_their_handlers_and_patches_point_at_stubs() {
    let mut k = kernel_with_switch();
    k.code.insert(TABLE, READ.to_le_bytes().to_vec()); // sys_call_table[0] = __x64_sys_read
    k.code.insert(TABLE + 8, WRITE.to_le_bytes().to_vec());
    let stubs = 0xffff_ffff_c000_0540;

    let t = targets(&k, HookMethod::TableRedirect, &[sc("read"), sc("write")]).unwrap();
    let (site, bytes) = patch(HookMethod::TableRedirect, 1, &t[1], 0, stubs).unwrap();

    assert_eq!((t[0].addr, t[0].original.clone()), (TABLE, READ.to_le_bytes().to_vec()));
    assert_eq!(t[1].addr, TABLE + 8);
    assert_eq!(site, stubs + STUB_SIZE);
    assert_eq!(bytes, (stubs + STUB_SIZE).to_le_bytes());
    assert!(matches!(patch(HookMethod::TableRedirect, MAX_HOOKS, &t[0], 0, stubs), Err(HookError::TooManyHooks(..))));
}

#[test]
fn a_table_slot_not_holding_its_handler_is_refused() {
    let mut k = kernel_with_switch();
    k.code.insert(TABLE, 0xffff_ffff_c0de_0000u64.to_le_bytes().to_vec());

    let err = targets(&k, HookMethod::TableRedirect, &[sc("read")]).unwrap_err();

    assert!(matches!(err, HookError::TableMismatch { nr: 0, found: 0xffff_ffff_c0de_0000, .. }), "{err}");
}
