//! When attacks happen. The span is split at `train_until` (the end of the first half). Each
//! half gets enough episodes for the wanted share of abnormal windows, and at least one of each
//! kind it may hold: the first half only the kinds not held back, the second half every kind.
//! A half is cut into equal slots, one episode per slot at a seeded place inside it with at
//! least one window of quiet on either side, so episodes never overlap or share a window.

use std::net::Ipv4Addr;

use super::attack::{AttackKind, Episode, Template, Timing};
use super::error::DatasetError;
use palisade_rng::Rng;

/// First octets of attacker addresses (none of them is used for clients).
pub(crate) const ATTACKER_NETS: [u8; 8] = [5, 46, 91, 103, 141, 178, 190, 194];

/// What the schedule needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Plan<'a> {
    pub seed: u64,
    pub start_s: u64,
    pub windows: u64,
    pub window_s: u64,
    pub share: f64,
    pub train: &'a [AttackKind],
    pub all: &'a [AttackKind],
    /// For each kind, the indices of its templates in `templates`.
    pub templates: &'a [(AttackKind, usize)],
}

/// Seconds an episode of `kind` lasts on average (for sizing the episode count).
fn mean_secs(kind: AttackKind, templates: &[(AttackKind, usize)], tpls: &[Template]) -> f64 {
    match kind.timing() {
        Timing::Fit { secs, .. } => (secs.0 + secs.1) as f64 / 2.0,
        Timing::Stretch { factor } => {
            let mine: Vec<f64> = templates
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|&(_, i)| tpls[i].duration_ns() as f64 / 1e9)
                .collect();
            mine.iter().sum::<f64>() / mine.len().max(1) as f64 * (factor.0 + factor.1) / 2.0
        }
    }
}

/// The episodes, in time order; the first half's end is `start_s + windows / 2 * window_s`.
pub(crate) fn schedule(plan: &Plan<'_>, tpls: &[Template]) -> Result<Vec<Episode>, DatasetError> {
    let mut rng = Rng::stream(plan.seed, 2);
    let half = plan.windows / 2;
    let halves = [(0, half, plan.train), (half, plan.windows - half, plan.all)];
    // Size both halves first, so a span too short is refused before anything is drawn.
    let mut sized = Vec::new();
    for &(first, count, kinds) in &halves {
        let per_episode: f64 =
            kinds.iter().map(|&k| mean_secs(k, plan.templates, tpls) / plan.window_s as f64 + 1.0).sum::<f64>()
                / kinds.len() as f64;
        let exact = plan.share * count as f64 / per_episode;
        let n = (exact.round() as usize).max(kinds.len());
        let slot = count / n as u64;
        if slot < 3 && n > kinds.len() {
            return Err(DatasetError::ShareTooLarge { share: plan.share, episodes: n, windows: count });
        }
        // One episode per kind may not overshoot the wanted share more than twice over.
        if slot < 3 || n as f64 > 2.0 * exact.max(0.5) {
            let need_windows = (kinds.len() as f64 * per_episode / plan.share).ceil() as u64;
            return Err(DatasetError::SpanTooShort {
                span: plan.windows * plan.window_s,
                episodes: n,
                share: plan.share,
                need: need_windows.max(3 * n as u64) * plan.window_s,
            });
        }
        sized.push((first, n, slot, kinds));
    }
    let mut episodes = Vec::new();
    for (first, n, slot, kinds) in sized {
        let mut order: Vec<AttackKind> = kinds.iter().copied().cycle().take(n).collect();
        rng.shuffle(&mut order);
        for (i, kind) in order.into_iter().enumerate() {
            let slot_start = (plan.start_s + (first + i as u64 * slot) * plan.window_s) * 1_000_000_000;
            // Quiet margin of one window on both sides.
            let room_ns = (slot - 2) * plan.window_s * 1_000_000_000;
            episodes.push(episode(&mut rng, plan, tpls, kind, slot_start + plan.window_s * 1_000_000_000, room_ns));
        }
    }
    Ok(episodes)
}

/// One episode of `kind` placed somewhere in `[from_ns, from_ns + room_ns)`.
fn episode(rng: &mut Rng, plan: &Plan<'_>, tpls: &[Template], kind: AttackKind, from_ns: u64, room_ns: u64) -> Episode {
    let choices: Vec<usize> = plan.templates.iter().filter(|(k, _)| *k == kind).map(|&(_, i)| i).collect();
    let template = choices[rng.below(choices.len())];
    let tpl = &tpls[template];
    let (duration_ns, keep, passes) = match kind.timing() {
        Timing::Fit { secs, rate } => {
            let d = rng.range(secs.0, secs.1) * 1_000_000_000;
            match rate {
                Some((lo, hi)) => {
                    let want = rng.uniform(lo, hi) * d as f64 / 1e9;
                    let passes = (want / tpl.len() as f64).ceil().max(1.0);
                    (d, (want / (passes * tpl.len() as f64)).min(1.0), passes as u32)
                }
                None => (d, 1.0, 1),
            }
        }
        Timing::Stretch { factor } => ((tpl.duration_ns() as f64 * rng.uniform(factor.0, factor.1)) as u64, 1.0, 1),
    };
    // A short span: the episode is compressed into its slot (same packets, faster).
    let duration_ns = duration_ns.min(room_ns);
    let start_ns = from_ns + rng.below_u64(room_ns - duration_ns + 1);
    let attackers = tpl.peers.iter().map(|_| attacker(rng)).collect();
    Episode {
        kind,
        source: tpl.source.file,
        start_ns,
        duration_ns,
        keep,
        passes,
        attackers,
        packets: 0,
        template,
        seed: rng.next_u64(),
    }
}

fn attacker(rng: &mut Rng) -> Ipv4Addr {
    let net = ATTACKER_NETS[rng.below(ATTACKER_NETS.len())];
    Ipv4Addr::from(u32::from(net) << 24 | (1 + rng.below_u64(0x00ff_fffe)) as u32)
}
