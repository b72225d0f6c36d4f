//! The ABI between gtrace's eBPF programs and its userspace.
//!
//! Everything that crosses the kernel/user boundary is defined here once, as `#[repr(C)]`
//! types with explicit padding and compile-time size asserts, so neither side mirrors the
//! other by hand. Enum-like values cross as `u32` and are decoded with `TryFrom` on the user
//! side: a bad discriminant in a `#[repr(u32)]` enum would be undefined behaviour.
#![no_std]

pub mod config;
pub mod counters;
pub mod event;
pub mod panic;
pub mod probe;
