//! Empty on purpose: see `[lib]` in Cargo.toml. The programs live in `main.rs`.
#![no_std]
