//! Fuzz target: arbitrary bytes through the npz decoder (see `feedforward_fuzz::npz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = feedforward_fuzz::npz(data);
});
