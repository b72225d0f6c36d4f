//! Fuzz target: `tracer_user::gobin::fuzzing::buildinfo` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_user::gobin::fuzzing::buildinfo(data));
