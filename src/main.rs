//! The `bodycamd` binary: parse the command line and hand over to the CLI.

fn main() {
    std::process::exit(bodycamd::cli::main());
}
