//! One module per probe family; `emit` holds the ring-buffer helpers they share.

mod bench;
mod emit;
mod gopark;
mod latency;
mod newproc;
mod panic;
mod ready;
mod run;
mod sched;
