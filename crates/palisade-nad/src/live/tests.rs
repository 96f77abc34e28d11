//! The live loop on a scripted source and clock: rows appear when the clock closes a window,
//! idle windows after the first packet included, nothing before it, nothing in progress at stop.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::{run, Clock, LiveSource};
use crate::build::{ethernet, ip_packet, L4};
use crate::capture::{Frame, LinkType};
use crate::error::RunError;
use crate::features::{Config, Features, Row, RowSink, Seconds, Series};

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

#[derive(Clone)]
struct FakeClock(Rc<Cell<u64>>);

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

/// Hands out each frame once the clock reaches its time; otherwise moves the clock one tick.
struct Scripted {
    frames: VecDeque<(u64, Vec<u8>)>,
    clock: FakeClock,
    current: Vec<u8>,
}

impl LiveSource for Scripted {
    fn link(&self) -> LinkType {
        LinkType::ETHERNET
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, RunError> {
        let now = self.clock.0.get();
        if self.frames.front().is_some_and(|(ts, _)| *ts <= now) {
            let (ts, frame) = self.frames.pop_front().expect("checked");
            self.current = frame;
            return Ok(Some(Frame {
                ts_ns: ts,
                orig_len: self.current.len() as u32,
                link: LinkType::ETHERNET,
                data: &self.current,
            }));
        }
        self.clock.0.set(now + 50 * MS);
        Ok(None)
    }

    fn drops(&mut self) -> Option<u64> {
        Some(0)
    }
}

/// Rows with the (fake) time they were emitted.
struct Timed(Vec<(Row, u64)>, FakeClock);

impl RowSink for Timed {
    type Error = std::io::Error;
    fn row(&mut self, row: &Row) -> std::io::Result<()> {
        self.0.push((*row, self.1.now_ns()));
        Ok(())
    }
}

#[test]
fn windows_close_on_the_clock_even_without_packets() {
    let clock = FakeClock(Rc::new(Cell::new(T0 - 2_000 * MS)));
    let v: IpAddr = "10.0.0.5".parse().expect("ip");
    let frame = |ts: u64| (ts, ethernet(&ip_packet("10.0.0.9".parse().expect("ip"), v, L4::Udp(1, 53), 86, &[]), &[]));
    let mut src = Scripted {
        frames: [frame(T0 + 100 * MS), frame(T0 + 200 * MS), frame(T0 + 3_500 * MS)].into(),
        clock: clock.clone(),
        current: Vec::new(),
    };
    let cfg = Config {
        vms: vec![v],
        window: Seconds::from_secs(1),
        reorder: Seconds::from_nanos(250 * MS),
        series: Series::Bounded, // forced to Open by the live loop
    };
    let mut sink = Timed(Vec::new(), clock.clone());
    let report = run(&mut src, &clock, Some(Duration::from_secs(6)), &cfg, &mut sink, &AtomicBool::new(false))
        .expect("live run");
    let got: Vec<(u64, f64, u64)> = sink
        .0
        .iter()
        .map(|(r, at)| ((r.window_start_ns - T0) / 1_000_000_000, r.features.pps, (at - T0) / MS))
        .collect();
    // Window 0 (2 packets) closes at 1 s + 0.25 s, on the first tick after; 1 and 2 are idle
    // (zero rows, on time); 3 holds a packet but is still open when the run ends at 4 s.
    assert_eq!(got, vec![(0, 2.0, 1250), (1, 0.0, 2250), (2, 0.0, 3250)]);
    assert_eq!(sink.0[1].0.features, Features::default());
    assert_eq!((report.read.packets, report.kernel_drops), (3, Some(0)));
}
