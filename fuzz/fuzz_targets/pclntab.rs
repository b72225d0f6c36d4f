//! Fuzz target: `tracer_user::gobin::fuzzing::pclntab` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_user::gobin::fuzzing::pclntab(data));
