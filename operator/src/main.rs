use clap::Parser;

fn main() -> anyhow::Result<()> {
    ordershop_operator::cli::Cli::parse().run()?;
    Ok(())
}
