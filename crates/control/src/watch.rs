//! Hot reload: poll the configuration path and hand every changed, validated configuration (or
//! the reasons it was rejected) to a callback. Polling content hashes, not file events, works
//! the same for editors that rewrite in place, atomic renames and Kubernetes ConfigMap symlink
//! swaps.

use std::path::PathBuf;
use std::time::Duration;

use crate::loader::{load_sources, read_sources, ConfigErrors, ConfigSet};

/// A stable fingerprint of configuration sources (names and contents).
pub fn fingerprint(sources: &[(String, String)]) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for (name, text) in sources {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(text.as_bytes());
        h.update(&[0]);
    }
    h.digest()
}

/// Poll `path` every `interval`; when its content changes, validate it and call `on_change`.
/// Runs until the returned task is aborted.
pub fn spawn_watcher<F>(
    path: PathBuf,
    interval: Duration,
    initial: u64,
    on_change: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Result<ConfigSet, ConfigErrors>) + Send + 'static,
{
    tokio::spawn(async move {
        let mut last = initial;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let p = path.clone();
            let read = tokio::task::spawn_blocking(move || read_sources(&p)).await;
            let Ok(result) = read else { continue };
            match result {
                Ok(sources) => {
                    let fp = fingerprint(&sources);
                    if fp == last {
                        continue;
                    }
                    last = fp;
                    on_change(load_sources(&sources));
                }
                Err(e) => {
                    // A file that vanished for a moment (mid-rename) is not a new config; report
                    // it once per distinct failure.
                    let fp = fingerprint(&[(String::new(), e.to_string())]);
                    if fp != last {
                        last = fp;
                        on_change(Err(e));
                    }
                }
            }
        }
    })
}
