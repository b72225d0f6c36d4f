//! The report behind `gtrace inspect`: what gtrace knows about a binary before attaching.
