//! Fuzz target: arbitrary bytes through the replay decoder (see `feedforward_fuzz::replay`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = feedforward_fuzz::replay(data);
});
