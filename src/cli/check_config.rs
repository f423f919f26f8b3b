use super::{load_config, ConfigArg};

pub fn main(a: ConfigArg) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    println!("{}: ok ({} station(s), state_dir {})", a.config.display(), cfg.stations.len(), cfg.state_dir.display());
    for s in &cfg.stations {
        if !s.path.is_dir() {
            println!(
                "note: station {:?} folder {} does not exist yet (it will be reported unavailable)",
                s.id,
                s.path.display()
            );
        }
    }
    Ok(0)
}
