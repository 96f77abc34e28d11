//! The boundary to the machine: the project's one way to run host commands and watch the
//! processes the lab starts (`palisade-host`); unit tests script a fake [`CommandRunner`] so
//! the lab logic is checked without root.

pub use palisade_host::{argv, check, command_line, CommandRunner, SystemRunner};
