//! `bodycamd-media`: the executable that links libav. The daemon starts it
//! as its probe and render workers (isolated child processes); it also runs
//! the commands that encode media (`simulate`, `demo`), which `bodycamd`
//! hands to it. Keeping libav out of `bodycamd` keeps the daemon small.

fn main() {
    std::process::exit(bodycamd::cli::media_main());
}
