//! `rediss://` to a real redis-server with TLS, its certificate signed by a
//! CA of the test's own, and a password that a URL could not carry as is.

use ordershop_redis::{InvalidRedisUrl, Redis, RedisOptions};
use ordershop_testkit::{RedisServer, free_port};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// `@`, `/`, `:`, `#` and `%` would each break a password pasted into a URL.
const PASSWORD: &str = "p@ss/w:rd#%20";

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, and a server certificate it signed for 127.0.0.1.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "OrderShop test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        server
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let server_cert = server
            .signed_by(&server_key, &Issuer::new(ca, &ca_key))
            .unwrap();
        for (name, pem) in [
            ("ca.pem", ca_cert.pem()),
            ("server.pem", server_cert.pem()),
            ("server.key", server_key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[tokio::test]
async fn rediss_with_a_private_ca_and_a_password_given_apart() {
    let pki = Pki::new();
    let tls_port = free_port().to_string();
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let server = RedisServer::spawn(&[
        "--requirepass",
        PASSWORD,
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("rediss://127.0.0.1:{tls_port}/0");

    let options = RedisOptions {
        password: Some(PASSWORD.to_owned()),
        ca_file: Some(ca.clone().into()),
        ..RedisOptions::default()
    };
    let redis = Redis::open_with(&url, &options).unwrap();
    redis.ping().await.expect("PING over TLS with the password");
    let mut blocking = redis
        .blocking()
        .await
        .expect("a blocking connection over TLS");
    let _: Option<Vec<String>> = blocking
        .query(redis::cmd("BLPOP").arg("nothing").arg(0.05))
        .await
        .unwrap();

    // Without the CA the server's certificate is not trusted.
    let untrusted = Redis::open_with(
        &url,
        &RedisOptions {
            password: Some(PASSWORD.to_owned()),
            ca_file: None,
            ..RedisOptions::default()
        },
    )
    .unwrap();
    assert!(untrusted.ping().await.is_err());
    // Without the password the server refuses.
    let anonymous = Redis::open_with(
        &url,
        &RedisOptions {
            password: None,
            ca_file: Some(ca.clone().into()),
            ..RedisOptions::default()
        },
    )
    .unwrap();
    assert!(anonymous.ping().await.is_err());
    // A CA for a plain connection is a mistake, said at once.
    let plain = format!("redis://127.0.0.1:{}/0", server.port());
    assert!(matches!(
        Redis::open_with(&plain, &options),
        Err(InvalidRedisUrl::CaWithoutTls)
    ));
    let missing = RedisOptions {
        ca_file: Some(pki.dir.path().join("nothing.pem")),
        ..options
    };
    assert!(matches!(
        Redis::open_with(&url, &missing),
        Err(InvalidRedisUrl::CaFile { .. })
    ));
}
