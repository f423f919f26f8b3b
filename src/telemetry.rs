//! Logging: tracing to stderr, human-readable on a terminal and JSON lines
//! otherwise (journald, files), filtered by `RUST_LOG` or the configured level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

type SetLevel = Box<dyn Fn(EnvFilter) -> bool + Send + Sync>;

static RELOAD: std::sync::OnceLock<SetLevel> = std::sync::OnceLock::new();

fn filter_for(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(level)).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Install the global subscriber. `RUST_LOG` wins over `level`.
pub fn init(level: &str, format: LogFormat) {
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter_for(level)).with_writer(std::io::stderr);
    // A second init (tests, the demo) keeps the first subscriber.
    if json {
        let b = builder.json().flatten_event(true).with_current_span(false).with_filter_reloading();
        let h = b.reload_handle();
        if b.try_init().is_ok() {
            let _ = RELOAD.set(Box::new(move |f| h.reload(f).is_ok()));
        }
    } else {
        let b = builder.with_target(false).with_ansi(std::io::stderr().is_terminal()).with_filter_reloading();
        let h = b.reload_handle();
        if b.try_init().is_ok() {
            let _ = RELOAD.set(Box::new(move |f| h.reload(f).is_ok()));
        }
    }
}

/// Apply a new configured level (after a reload); `RUST_LOG` still wins.
pub fn set_level(level: &str) {
    if let Some(set) = RELOAD.get() {
        set(filter_for(level));
    }
}
