use super::{Rng, Zipf};

/// The streams trained models were made with. These values were computed with palisade-detect's
/// own generator before it moved here (issue #14 §3): a change that breaks them changes every
/// model trained from a seed.
#[test]
fn streams_are_the_ones_models_were_trained_with() {
    let mut r = Rng::new(7);
    let first: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
    assert_eq!(first, [0xb358_faf7_4ef9_765a, 0x475c_3d96_4f48_2cd2, 0xd6f1_d349_952c_7996, 0xfb29_3873_1e80_7240]);

    let mut r = Rng::derive(1, &[2, 3]);
    let first: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
    assert_eq!(first, [0x2ea5_2030_1ac7_79ce, 0x213d_5b76_39ee_6a78, 0xa6e2_75b7_5dc2_a902, 0x860d_808d_53e9_b3a6]);
    assert_eq!(Rng::derive(5, &[]).next_u64(), 0xcf5f_cee2_00b3_5cb9);
    assert_eq!(Rng::derive(1, &[2]).next_u64(), 0x1b82_25db_4865_3f00);
}

/// What the detector draws from `Rng::new(7)`, in this order, as its old generator drew it.
#[test]
fn draws_are_the_ones_models_were_trained_with() {
    let mut r = Rng::new(7);
    assert_eq!([r.unit(), r.unit()], [0.7005764821796896, 0.2787512294737843]);
    assert_eq!([r.below(10), r.below(10), r.below(1000), r.below(3)], [8, 9, 990, 2]);
    assert_eq!([r.normal(), r.normal()], [0.2805221356340433, 0.5882808046444099]);
    let mut v: Vec<u32> = (0..10).collect();
    r.shuffle(&mut v);
    assert_eq!(v, [4, 0, 3, 1, 9, 2, 8, 7, 6, 5]);
}

#[test]
fn same_seed_same_stream_other_seed_or_stream_other_stream() {
    let take = |mut r: Rng| -> Vec<u64> { (0..4).map(|_| r.next_u64()).collect() };
    assert_eq!(take(Rng::new(7)), take(Rng::new(7)));
    assert_ne!(take(Rng::new(7)), take(Rng::new(8)));
    assert_eq!(take(Rng::stream(1, 1)), take(Rng::derive(1, &[1])));
    assert_ne!(take(Rng::stream(1, 1)), take(Rng::stream(1, 2)));
    assert_ne!(take(Rng::stream(1, 1)), take(Rng::stream(2, 1)));
    assert_ne!(take(Rng::stream(1, 1)), take(Rng::new(1)));
}

#[test]
fn below_and_unit_stay_in_range_and_spread() {
    let mut r = Rng::new(1);
    let mut seen = [0u32; 10];
    for _ in 0..10_000 {
        seen[r.below(10)] += 1;
        assert!((0.0..1.0).contains(&r.unit()));
    }
    assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    assert_eq!(r.below(0), 0);
    assert_eq!(r.below_u64(1), 0);
}

#[test]
fn below_u64_reaches_above_32_bits() {
    let mut r = Rng::new(2);
    let n = 3u64 << 40;
    let draws: Vec<u64> = (0..1000).map(|_| r.below_u64(n)).collect();
    assert!(draws.iter().all(|&x| x < n));
    assert!(draws.iter().filter(|&&x| x >= 2 << 40).count() > 250, "the top third is reached");
}

#[test]
fn range_is_inclusive_at_both_ends() {
    let mut r = Rng::new(3);
    let mut seen = [false; 4];
    for _ in 0..200 {
        let x = r.range(5, 8);
        assert!((5..=8).contains(&x));
        seen[(x - 5) as usize] = true;
    }
    assert_eq!(seen, [true; 4]);
    assert_eq!(r.range(9, 9), 9);
    assert_eq!(r.range(9, 2), 9, "an empty range gives its low end");
    let _ = r.range(0, u64::MAX);
}

#[test]
fn uniform_chance_and_exp_have_their_shapes() {
    let mut r = Rng::new(4);
    let n = 20_000;
    let xs: Vec<f64> = (0..n).map(|_| r.uniform(2.0, 4.0)).collect();
    assert!(xs.iter().all(|x| (2.0..4.0).contains(x)));
    let hits = (0..n).filter(|_| r.chance(0.25)).count();
    assert!((4_600..5_400).contains(&hits), "{hits} of {n}");
    assert!(!r.chance(0.0) && r.chance(1.0));
    let mean = (0..n).map(|_| r.exp(1.5)).sum::<f64>() / n as f64;
    assert!((mean - 1.5).abs() < 0.05, "exp mean {mean}");
}

#[test]
fn normal_and_poisson_means_are_close() {
    let mut r = Rng::stream(3, 0);
    let n = 20_000;
    let (sum, sq) = (0..n).map(|_| r.normal()).fold((0.0, 0.0), |(s, q), x| (s + x, q + x * x));
    assert!((sum / n as f64).abs() < 0.03 && (sq / n as f64 - 1.0).abs() < 0.05);
    for mean in [0.5, 7.0, 120.0] {
        let got = (0..n).map(|_| r.poisson(mean)).sum::<u64>() as f64 / n as f64;
        assert!((got - mean).abs() < mean * 0.05 + 0.05, "mean {mean}: got {got}");
    }
    assert_eq!(r.poisson(0.0), 0);
}

#[test]
fn zipf_is_heavy_tailed() {
    let z = Zipf::new(1000, 1.1);
    let mut r = Rng::stream(4, 0);
    let mut counts = vec![0u32; 1000];
    for _ in 0..50_000 {
        counts[z.sample(&mut r)] += 1;
    }
    assert!(counts[0] > 10 * counts[99].max(1), "head {} vs rank 100 {}", counts[0], counts[99]);
    assert!(counts[500..].iter().filter(|&&c| c > 0).count() > 100, "the tail is visited");
    assert_eq!(Zipf::new(0, 1.0).sample(&mut r), 0, "no items is one item");
}
