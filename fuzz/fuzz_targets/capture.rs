//! Fuzz target: `tracer_user::capture::parse` (capture files come from other machines and
//! users) must give an error, never panic or allocate beyond the input's size.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tracer_user::capture::parse(data);
});
