//! Fuzz target: arbitrary bytes through the checkpoint decoder (see `feedforward_fuzz::checkpoint`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = feedforward_fuzz::checkpoint(data);
});
