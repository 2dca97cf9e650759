//! Fuzz target: arbitrary bytes through the model decoder (see `feedforward_fuzz::model`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = feedforward_fuzz::model(data);
});
