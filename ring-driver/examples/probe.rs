//! What this kernel's io_uring supports: version, every opcode of Linux 6.18
//! with the kernel it needs, the features, and the defaults ring picks here.
//!
//! Run: `cargo run -p ring-io-driver --example probe`

use std::process::ExitCode;

use ring_io_driver::Ring;
use ring_io_sys::Features;

#[path = "cli/mod.rs"]
#[allow(dead_code, reason = "each example uses part of it")]
mod cli;

use cli::{Context as _, Error};

fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        return cli::usage("probe", "", "takes no arguments");
    }
    cli::exit("probe", probe())
}

fn probe() -> Result<(), Error> {
    let ring = Ring::new(8).context("cannot set up a ring")?;
    // The report starts with the kernel version and the last opcode.
    let probe = ring.probe().context("cannot probe the opcodes")?;
    print!("{}", probe.report());
    let features = ring.params().features();
    let names: Vec<&str> = Features::all()
        .iter_names()
        .filter(|(_, f)| features.contains(*f))
        .map(|(name, _)| name)
        .collect();
    println!("features: {}", names.join(" "));
    let defaults: Vec<&str> = ring.defaults().iter_names().map(|(name, _)| name).collect();
    println!(
        "defaults picked: {}",
        if defaults.is_empty() {
            "none".to_string()
        } else {
            defaults.join(" ")
        }
    );
    Ok(())
}
