//! Fuzz target: arbitrary bytes through the idx decoder (see `feedforward_fuzz::idx`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = feedforward_fuzz::idx(data);
});
