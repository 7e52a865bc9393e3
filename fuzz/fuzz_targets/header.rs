#![no_main]
//! Header parsing and the model-free packet table (`diffc::inspect`) on arbitrary bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = diffc::inspect(data, &diffc::Limits::default());
});
