#![no_main]
//! Encode -> decode round trip of small arbitrary images with the closed-form prior.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diffc::fuzzing::round_trip(data);
});
