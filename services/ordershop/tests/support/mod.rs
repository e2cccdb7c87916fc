//! The shop as `ordershop local` starts it, driven over real HTTP.
#![allow(dead_code, unreachable_pub)]

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
pub use ordershop_testkit::shop_api::DEADLINE;
use ordershop_testkit::{ShopApi, eventually_async};

/// A running shop: the `ordershop local` supervisor and its children.
pub struct Shop {
    child: Child,
    pub data_dir: PathBuf,
    api: ShopApi,
}

/// Every REST helper of [`ShopApi`] works on a `Shop`.
impl std::ops::Deref for Shop {
    type Target = ShopApi;

    fn deref(&self) -> &ShopApi {
        &self.api
    }
}

impl Shop {
    /// Starts a private shop: its own Redis (or `REDIS_URL`), free ports,
    /// short leases and claim timeouts so crash recovery is quick.
    pub async fn start() -> Shop {
        Self::start_with_env(&[]).await
    }

    /// [`Shop::start`] with extra environment for `ordershop local` and,
    /// through it, every role (e.g. the gateway's API tokens).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Shop {
        let data_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("shop-{}", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_ordershop"));
        command
            .arg("local")
            .arg("--watch-parent")
            // Port 0 everywhere: the supervisor binds the ports itself and
            // hands them to its children, so none can be taken in between.
            .args(["--base-port", "0"])
            .args(["--http-listen", "127.0.0.1:0"])
            // Short leases so a killed service's message comes back quickly; a
            // claim timeout well above the slowest saga backlog, so a busy
            // consumer's prefetched events are not taken from it.
            .args(["--lease-ms", "1500", "--claim-idle-ms", "5000"])
            .arg("--data-dir")
            .arg(&data_dir);
        match std::env::var("REDIS_URL") {
            Ok(url) => {
                command.args(["--redis-url", &url]);
            }
            Err(_) => {
                command.args(["--redis-port", "0"]);
            }
        }
        let mut child = command
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("starting `ordershop local`");
        // The supervisor writes the UI's address once the shop is ready.
        let addr_file = data_dir.join("run").join("http.addr");
        let started = std::time::Instant::now();
        let addr = loop {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("`ordershop local` exited ({status}) before it was ready; its log is above");
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "`ordershop local` did not write {} within 90 s",
                addr_file.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let shop = Shop {
            child,
            data_dir,
            api: ShopApi::new(format!("http://{}", addr.trim())),
        };
        shop.wait_ready(Duration::from_secs(90)).await;
        shop
    }

    /// One shop shared by the tests of a binary (each uses its own entities).
    pub async fn shared() -> &'static Shop {
        static SHOP: OnceLock<Shop> = OnceLock::new();
        static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _guard = STARTING.lock().await;
        if let Some(shop) = SHOP.get() {
            return shop;
        }
        let shop = Shop::start().await;
        SHOP.get_or_init(|| shop)
    }

    pub fn pid_of(&self, role: &str) -> i32 {
        let file = self.data_dir.join("run").join(format!("{role}.pid"));
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    /// `kill -9` one service; the supervisor restarts it.
    pub fn kill_role(&self, role: &str) -> i32 {
        let pid = self.pid_of(role);
        nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9");
        pid
    }

    /// Waits until the supervisor has started `role` again.
    pub async fn wait_restarted(&self, role: &str, old_pid: i32) {
        eventually_async(
            &format!("{role} to be restarted"),
            DEADLINE,
            || async move {
                let file = self.data_dir.join("run").join(format!("{role}.pid"));
                let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
                (pid != old_pid).then_some(())
            },
        )
        .await;
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
