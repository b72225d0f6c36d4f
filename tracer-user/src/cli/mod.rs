//! One module per subcommand: clap flags plus a `run` that calls the library.

pub mod dump;
