#![no_main]
//! Streaming decode of arbitrary bytes with the closed-form prior, fed in fuzzer-chosen splits.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diffc::fuzzing::stream_decode(data);
});
