//! Replays every file under `tests/fuzz_regressions/<target>/` through the same library
//! harness the cargo-fuzz target calls. Crashes found by fuzzing are saved here under a name
//! that says what they broke, so they stay fixed.

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let data = std::fs::read(&f).unwrap();
        let r = std::panic::catch_unwind(|| harness(&data));
        assert!(r.is_ok(), "regression input {} panics", f.display());
        n += 1;
    }
    assert!(n > 0, "no regression inputs for {target}");
    n
}

#[test]
fn header_regressions() {
    replay("header", |d| {
        let _ = diffc::inspect(d, &diffc::Limits::default());
    });
}

#[test]
fn stream_decode_regressions() {
    replay("stream_decode", diffc::fuzzing::stream_decode);
}

#[test]
fn round_trip_regressions() {
    replay("round_trip", diffc::fuzzing::round_trip);
}

/// Cheap in-tree fuzzing on every test run: deterministic pseudo-random inputs through the
/// streaming-decode harness (the cargo-fuzz targets explore far more; see `fuzz/`).
#[test]
fn stream_decode_pseudo_random_inputs() {
    let g = diffc::prng::Philox::new(0xf022);
    for t in 0..400u64 {
        let len = (g.block(diffc::prng::Domain::Arrival, 1, t)[0] % 300) as usize;
        let data: Vec<u8> = (0..len as u64)
            .map(|i| g.block(diffc::prng::Domain::Sign, t as u32, i)[0] as u8)
            .collect();
        diffc::fuzzing::stream_decode(&data);
    }
}
