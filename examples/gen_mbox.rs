//! `cargo run --release --example gen_mbox -- OUT.mbox [N] [SETTINGS.json] [BIG]`:
//! writes the benchmark mailbox (and the settings that recognise its clients) for
//! measurements outside criterion, such as peak memory of a whole CLI scan; BIG more
//! client messages carry a 25 MB attachment each.

#[path = "../benches/support/mbox_gen.rs"]
mod mbox_gen;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "bench.mbox".to_owned());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&out)?);
    mbox_gen::write_mbox(&mut w, n)?;
    if let Some(settings) = args.next() {
        std::fs::write(settings, mbox_gen::SETTINGS)?;
    }
    let big: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    mbox_gen::write_big_attachments(&mut w, n, big, 25)?;
    eprintln!("wrote {n} messages and {big} with a 25 MB attachment to {out}");
    Ok(())
}
