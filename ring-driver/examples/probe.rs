//! What this kernel's io_uring supports: version, features, the defaults
//! ring picks here, and every opcode of Linux 6.18 with the kernel it needs.
//!
//! Run: `cargo run -p ring-io-driver --example probe`

use ring_io_driver::Ring;
use ring_io_sys::Features;

fn main() -> std::io::Result<()> {
    match ring_io_driver::kernel_version() {
        Some(v) => println!("kernel {v}"),
        None => println!("kernel version unknown"),
    }
    let ring = Ring::new(8)?;
    let features = ring.params().features();
    let names: Vec<&str> = Features::all()
        .iter_names()
        .filter(|(_, f)| features.contains(*f))
        .map(|(name, _)| name)
        .collect();
    println!("features: {}", names.join(" "));
    let defaults: Vec<&str> = ring.defaults().iter_names().map(|(name, _)| name).collect();
    println!("defaults picked: {}", defaults.join(" "));
    print!("{}", ring.probe()?.report());
    Ok(())
}
