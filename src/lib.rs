pub mod clock;
pub mod config;
pub mod domain;
pub mod index;
pub mod media;
pub mod naming;
pub mod store;
pub mod watch;
