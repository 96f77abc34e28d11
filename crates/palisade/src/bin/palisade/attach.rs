//! `palisade vmi attach`: a one-off look into a running libvirt domain Palisade did not start,
//! with no change to its definition and nothing left behind.

use std::io::Write;

use palisade_libvirt::{AttachOptions, Attachment, Libvirt, RamAccess};

use crate::{print, Cli, Output};

/// What an attach found, for `-o json`.
#[derive(Debug, serde::Serialize)]
struct AttachReport {
    domain: String,
    uuid: String,
    qemu_pid: u32,
    virt_type: String,
    machine: String,
    memory_bytes: u64,
    access: String,
    host_address: Option<String>,
    backing_file: Option<String>,
    read_mib_per_s: f64,
    symbols: usize,
    virt_base: String,
    phys_base: String,
    kaslr_slide: String,
    attach_ms: u128,
}

/// Attaches to `domain` at `uri`, reports, optionally prints every symbol, and detaches.
pub fn run(cli: &Cli, uri: &str, domain: &str, symbols: bool) -> anyhow::Result<()> {
    let libvirt = Libvirt::new(uri);
    let attachment = Attachment::attach(&libvirt, domain, &AttachOptions::default())?;
    let ks = attachment.symbols();
    let (host_address, backing_file) = match attachment.access() {
        RamAccess::ProcessMemory { host_address, .. } => (Some(format!("{host_address:#x}")), None),
        RamAccess::MappedFile { path, offset } => (None, Some(format!("{} +{offset:#x}", path.display()))),
    };
    let def = attachment.definition();
    let report = AttachReport {
        domain: attachment.domain().name.clone(),
        uuid: attachment.domain().uuid.clone(),
        qemu_pid: attachment.pid(),
        virt_type: def.virt_type.clone(),
        machine: def.machine.clone(),
        memory_bytes: attachment.ram().layout().total(),
        access: attachment.access().method().to_owned(),
        host_address,
        backing_file,
        read_mib_per_s: attachment.throughput_mib_s().round(),
        symbols: ks.symbols().len(),
        virt_base: format!("{}", ks.virt_base()),
        phys_base: format!("{}", ks.phys_base()),
        kaslr_slide: format!("{:#x}", ks.kaslr_slide()),
        attach_ms: attachment.elapsed().as_millis(),
    };
    if symbols {
        let mut out = std::io::stdout().lock();
        for s in ks.symbols() {
            if writeln!(out, "{s}").is_err() {
                break; // a closed pipe (`| head`) ends the listing
            }
        }
    } else {
        print(cli, &report, |r| {
            println!("domain {} ({}), QEMU pid {}, {} on {}", r.domain, r.uuid, r.qemu_pid, r.virt_type, r.machine);
            let place = r.host_address.clone().or_else(|| r.backing_file.clone()).unwrap_or_default();
            println!(
                "RAM: {} MiB through {} at {place}, read at {} MiB/s",
                r.memory_bytes >> 20,
                r.access,
                r.read_mib_per_s
            );
            println!(
                "kernel: {} symbols; _text at {} (physical {}), KASLR slide {}",
                r.symbols, r.virt_base, r.phys_base, r.kaslr_slide
            );
            println!("attached in {} ms; detached, domain unchanged", r.attach_ms);
        });
    }
    if symbols && cli.output == Output::Human {
        eprintln!("{}: {} symbols through {}", report.domain, report.symbols, report.access);
    }
    attachment.detach()?;
    Ok(())
}
