//! The pure part of a run: the attack kinds, the seeded schedule of attack episodes, the
//! benign request rate over the compressed day, and the label of every window. Nothing here
//! touches the machine, so all of it is unit tested.

use std::fmt;

use palisade_rng::Rng;
use serde::Serialize;

use crate::error::TrafficError;

/// An attack kind; its name is what `labels.csv` says in the `attack` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// TCP SYN flood to the HTTP port (hping3 `-S`).
    SynFlood,
    /// UDP flood to the UDP service (hping3 `--udp`).
    UdpFlood,
    /// nmap SYN scan of ports 1-1000.
    Nmap,
    /// masscan SYN scan of ports 1-1000.
    MasscanTcp,
    /// Many HTTP requests for paths that do not exist (an in-process client).
    UrlProbe,
}

impl Kind {
    /// Every kind, in label order.
    pub const ALL: [Kind; 5] = [Kind::SynFlood, Kind::UdpFlood, Kind::Nmap, Kind::MasscanTcp, Kind::UrlProbe];

    /// The kinds held back for the test part unless told otherwise: a flood and a probe the
    /// training part never shows.
    pub const HELD_BACK: [Kind; 2] = [Kind::UdpFlood, Kind::UrlProbe];

    /// The name in `labels.csv`, `dataset.json` and `--held-back`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::SynFlood => "syn_flood",
            Kind::UdpFlood => "udp_flood",
            Kind::Nmap => "nmap",
            Kind::MasscanTcp => "masscan_tcp",
            Kind::UrlProbe => "url_probe",
        }
    }

    /// The kind of a name (`-` and `_` alike).
    pub fn parse(name: &str) -> Result<Self, TrafficError> {
        let norm = name.trim().replace('-', "_");
        Self::ALL.into_iter().find(|k| k.name() == norm).ok_or_else(|| TrafficError::UnknownKind {
            name: name.to_owned(),
            known: Self::ALL.map(|k| k.name()).join(", "),
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One attack episode as planned: which kind, when (seconds after the start) and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// The kind.
    pub kind: Kind,
    /// Seconds after the first window's start.
    pub at_s: u64,
    /// Planned length in seconds.
    pub secs: u64,
}

/// Seconds at the start of the run without attacks (the clients settle).
pub const WARM_UP_S: u64 = 10;
/// Shortest and longest episode in seconds.
pub const EPISODE_S: (u64, u64) = (4, 8);
/// Quiet seconds at least before and after each episode.
pub const MARGIN_S: u64 = 3;

/// The attack schedule for a run of `seconds` split at `half`: the first part holds `train`
/// kinds only, the second every kind in `train` and `held`; each kind of a part at least once,
/// more episodes when `share` of the part's seconds asks for them. Episodes sit in equal slots
/// with quiet margins; within its slot each starts at a seeded offset.
pub fn schedule(
    seed: u64,
    seconds: u64,
    half: u64,
    share: f64,
    train: &[Kind],
    held: &[Kind],
) -> Result<Vec<Planned>, TrafficError> {
    if !(share > 0.0 && share < 0.5) {
        return Err(TrafficError::BadShare(share));
    }
    if train.is_empty() {
        return Err(TrafficError::NothingToTrain);
    }
    let mut rng = Rng::stream(seed, 1);
    let all: Vec<Kind> = train.iter().chain(held).copied().collect();
    let mut out = Vec::new();
    for (part, from, to, kinds) in
        [("the training part", WARM_UP_S, half, train), ("the test part", half, seconds, &all)]
    {
        let len = to.saturating_sub(from);
        let mean = (EPISODE_S.0 + EPISODE_S.1) as f64 / 2.0;
        let wanted = (len as f64 * share / mean).round() as usize;
        let count = wanted.max(kinds.len());
        let needed = count as u64 * (EPISODE_S.0 + 2 * MARGIN_S);
        if len < needed {
            return Err(TrafficError::TooShort { seconds, part, has: len, needed, episodes: count });
        }
        // Every kind once in a seeded order, then seeded picks.
        let mut order: Vec<Kind> = kinds.to_vec();
        rng.shuffle(&mut order);
        while order.len() < count {
            order.push(kinds[rng.below(kinds.len())]);
        }
        let slot = len / count as u64;
        for (i, kind) in order.into_iter().enumerate() {
            let secs = rng.range(EPISODE_S.0, EPISODE_S.1.min(slot - 2 * MARGIN_S));
            let start = from + i as u64 * slot;
            let at_s = start + rng.range(MARGIN_S, slot - secs - MARGIN_S);
            out.push(Planned { kind, at_s, secs });
        }
    }
    Ok(out)
}

/// The benign request rate (requests per second) at `t_s` seconds into a compressed day of
/// `period_s` seconds: a smooth cycle from 15 % of `peak` (night) to `peak` (afternoon), the
/// first window being midnight.
pub fn daily_rate(t_s: f64, period_s: f64, peak: f64) -> f64 {
    let phase = (t_s / period_s).fract();
    // Lowest at 04:00, highest at 16:00.
    let shape = 0.5 - 0.5 * (std::f64::consts::TAU * (phase - 1.0 / 6.0)).cos();
    peak * (0.15 + 0.85 * shape)
}

/// A seeded noise factor per window (log-normal, sigma 0.2, smoothed over neighbours) that
/// multiplies the daily rate, so no two days look alike.
pub fn noise(seed: u64, windows: usize) -> Vec<f64> {
    let mut rng = Rng::stream(seed, 2);
    let raw: Vec<f64> = (0..windows).map(|_| rng.normal()).collect();
    (0..windows)
        .map(|i| {
            let lo = i.saturating_sub(1);
            let hi = (i + 1).min(windows - 1);
            let m = raw[lo..=hi].iter().sum::<f64>() / (hi - lo + 1) as f64;
            (0.2 * m).exp()
        })
        .collect()
}

/// An episode as it ran: host-clock times of its first and last instant (the capture's clock).
#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    /// The kind.
    pub kind: Kind,
    /// Nanoseconds since the epoch when the tool was started.
    pub start_ns: u64,
    /// Nanoseconds since the epoch when the tool had stopped.
    pub end_ns: u64,
    /// The address it came from.
    pub source: std::net::Ipv4Addr,
    /// How it was made (command line, or the in-process client).
    pub command: String,
}

/// The label of every window `[start + i*w, start + (i+1)*w)`: the first kind whose episode
/// overlaps it, or none.
pub fn labels(start_s: u64, window_s: u64, windows: usize, ran: &[Ran]) -> Vec<Option<Kind>> {
    let mut out = vec![None; windows];
    let ns = 1_000_000_000u64;
    let (start_ns, w_ns) = (start_s * ns, window_s * ns);
    for r in ran {
        let first = r.start_ns.saturating_sub(start_ns) / w_ns;
        let last = r.end_ns.saturating_sub(start_ns) / w_ns;
        if r.end_ns < start_ns {
            continue;
        }
        for l in out.iter_mut().take((last + 1) as usize).skip(first as usize) {
            l.get_or_insert(r.kind);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_back_kinds_only_after_the_split_and_every_kind_present() {
        let train = [Kind::SynFlood, Kind::Nmap, Kind::MasscanTcp];
        for seed in 0..50 {
            let s = schedule(seed, 180, 90, 0.1, &train, &Kind::HELD_BACK).expect("fits");
            for k in Kind::ALL {
                assert!(s.iter().any(|e| e.kind == k), "seed {seed}: {k} missing");
            }
            for e in &s {
                assert!(e.at_s >= WARM_UP_S && e.at_s + e.secs <= 180, "{e:?}");
                let before = e.at_s + e.secs <= 90;
                assert!(before || e.at_s >= 90, "episode across the split: {e:?}");
                if Kind::HELD_BACK.contains(&e.kind) {
                    assert!(e.at_s >= 90, "held-back kind in training: {e:?}");
                }
            }
            for w in s.windows(2) {
                assert!(w[0].at_s + w[0].secs + 2 * MARGIN_S <= w[1].at_s + 1, "too close: {w:?}");
            }
        }
    }

    #[test]
    fn same_seed_same_schedule_other_seed_other() {
        let train = [Kind::SynFlood, Kind::Nmap];
        let a = schedule(7, 1800, 900, 0.06, &train, &[Kind::UrlProbe]).expect("fits");
        assert_eq!(a, schedule(7, 1800, 900, 0.06, &train, &[Kind::UrlProbe]).expect("fits"));
        assert_ne!(a, schedule(8, 1800, 900, 0.06, &train, &[Kind::UrlProbe]).expect("fits"));
        assert!(a.len() > 10, "a 30-minute run at 6 % has more than one episode per kind: {}", a.len());
    }

    #[test]
    fn too_short_a_run_is_refused_as_such() {
        let e = schedule(1, 40, 20, 0.1, &[Kind::SynFlood, Kind::Nmap], &[Kind::UrlProbe]).unwrap_err();
        assert!(matches!(e, TrafficError::TooShort { .. }), "{e}");
    }

    #[test]
    fn daily_rate_cycles_between_night_and_afternoon() {
        let night = daily_rate(4.0 * 60.0, 1440.0, 100.0);
        let afternoon = daily_rate(16.0 * 60.0, 1440.0, 100.0);
        assert!((night - 15.0).abs() < 1e-9 && (afternoon - 100.0).abs() < 1e-9, "{night} {afternoon}");
        assert!((daily_rate(100.0, 1440.0, 10.0) - daily_rate(1540.0, 1440.0, 10.0)).abs() < 1e-9);
    }

    #[test]
    fn labels_cover_every_window_an_episode_touches() {
        let ns = 1_000_000_000u64;
        let ran = |kind, a: f64, b: f64| Ran {
            kind,
            start_ns: (100.0 * ns as f64 + a * ns as f64) as u64,
            end_ns: (100.0 * ns as f64 + b * ns as f64) as u64,
            source: std::net::Ipv4Addr::LOCALHOST,
            command: String::new(),
        };
        let l = labels(100, 1, 10, &[ran(Kind::SynFlood, 2.5, 4.2), ran(Kind::Nmap, 4.9, 5.1)]);
        let want = [None, None, Some(Kind::SynFlood), Some(Kind::SynFlood), Some(Kind::SynFlood), Some(Kind::Nmap)];
        assert_eq!(&l[..6], &want);
        assert!(l[6..].iter().all(Option::is_none));
    }

    #[test]
    fn kinds_parse_by_name() {
        assert_eq!(Kind::parse("url-probe").expect("known"), Kind::UrlProbe);
        assert!(Kind::parse("ping").is_err());
    }
}
