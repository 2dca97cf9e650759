//! Fuzz target: arbitrary bytes through the csv decoder (see `feedforward_fuzz::csv`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = feedforward_fuzz::csv(data);
});
