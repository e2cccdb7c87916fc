//! The REST contract, checked by a fuzzer: schemathesis runs every check it
//! has against a fresh `ordershop local`, from the gateway's own
//! `/openapi.json`. Schema-valid requests must be accepted (or refused only by
//! the shop's state: 404, 409), schema-violating ones refused with a 4xx,
//! every answer must match the document (status, content type, body), no
//! request may get a 5xx, and the stateful phase follows the document's links
//! create → read → update → delete. The few places where the v2 contract, not
//! the schema, decides are in `tests/contract/schemathesis.toml`.
//!
//! schemathesis comes from PyPI: `tests/contract/install.sh` installs the
//! pinned version into the project's cache (`cargo run -p xtask -- test`
//! runs it and passes the path as `ORDERSHOP_SCHEMATHESIS`).

mod support;

use std::path::{Path, PathBuf};

use support::Shop;

/// Enough examples per operation to try every schema rule both ways, within
/// about two minutes here; a fixed seed, so a failure reproduces.
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "20261207";

fn contract_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract")
}

/// `ORDERSHOP_SCHEMATHESIS`, else what `install.sh` installs (it prints the
/// path, installing first when needed).
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("ORDERSHOP_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let install = contract_dir().join("install.sh");
    let output = std::process::Command::new("bash")
        .arg(&install)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", install.display()));
    assert!(
        output.status.success(),
        "schemathesis is required for the contract test and {} could not install it \
         (it needs python3 with venv, and PyPI): {}",
        install.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_with_every_check_finds_the_api_as_documented() {
    let st = schemathesis();
    let shop = Shop::start().await;
    let work = tempfile::tempdir().expect("a scratch directory for schemathesis");
    let output = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(contract_dir().join("schemathesis.toml"))
        .arg("--no-color")
        .arg("run")
        .arg(format!("{}/openapi.json", shop.url))
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        // One worker: hypothesis is not thread-safe everywhere (its lambda
        // source cache failed under two).
        .args(["--workers", "1"])
        .args(["--generation-database", "none"])
        .current_dir(work.path())
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run schemathesis at {} ({e}); tests/contract/install.sh installs it",
                st.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found the API unlike its document ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // A run that tested nothing would pass too.
    let summary = stdout
        .lines()
        .find(|line| line.contains("generated,"))
        .unwrap_or_else(|| panic!("no test-case count in schemathesis' output:\n{stdout}"));
    assert!(
        summary.contains("passed") && !summary.contains(" 0 generated"),
        "{summary}"
    );
    for phase in ["✅ Coverage", "✅ Fuzzing", "✅ Stateful"] {
        assert!(
            stdout.contains(phase),
            "phase {phase} did not pass:\n{stdout}"
        );
    }
}
