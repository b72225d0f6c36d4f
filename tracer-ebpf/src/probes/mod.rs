//! One module per probe family.

mod gopark;
mod newproc;
mod sched;
