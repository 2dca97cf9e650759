//! Fuzz target: arbitrary bytes through the npy decoder (see `feedforward_fuzz::npy`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = feedforward_fuzz::npy(data);
});
