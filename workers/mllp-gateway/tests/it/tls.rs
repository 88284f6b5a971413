//! TLS end to end through the real `mllp-gateway` binary, with a CA made here (rcgen): a
//! client whose certificate the CA signed is served; a certificate from another CA (with the
//! same subject), or none, is refused at the handshake; a client sending as a facility outside
//! its certificate's mapping gets AR, and the log names the peer but not the message; a plain
//! TCP client gets no ACK.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fleet_testkit::workers::Worker;
use mllp_gateway::ack::parse_ack;
use mllp_gateway::client::{Client, ConnectOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::common::{ANSWER, Conn, Local, QUEUE, adt};

/// A CA: its certificate's PEM and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A leaf signed by `ca`, written as `dir/NAME.pem` and `dir/NAME.key`.
fn leaf(
    ca: &Ca,
    dir: &Path,
    name: &str,
    common_name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (PathBuf, PathBuf) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// The gateway binary serving TLS with client certificates required, `north-feed` mapped to
/// facility NORTH, on a local backend; and the clients' files.
struct TlsGateway {
    local: Local,
    worker: Worker,
    addr: String,
    ca: PathBuf,
    /// `north-feed`, signed by the gateway's client CA.
    north: (PathBuf, PathBuf),
    /// Also `north-feed`, signed by a CA the gateway does not know.
    rogue: (PathBuf, PathBuf),
    /// `west-feed`, signed by the gateway's client CA but in no facility mapping.
    west: (PathBuf, PathBuf),
}

impl TlsGateway {
    async fn start() -> Self {
        let local = Local::new();
        let dir = local.dir.path().join("pki");
        std::fs::create_dir(&dir).unwrap();
        let fleet_ca = ca("fleet test CA");
        let other_ca = ca("some other CA");
        let server = leaf(
            &fleet_ca,
            &dir,
            "server",
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let north = leaf(
            &fleet_ca,
            &dir,
            "north",
            "north-feed",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let rogue = leaf(
            &other_ca,
            &dir,
            "rogue",
            "north-feed",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let west = leaf(
            &fleet_ca,
            &dir,
            "west",
            "west-feed",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, &fleet_ca.pem).unwrap();

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let path = |p: &Path| p.display().to_string();
        let (db, objects) = (
            path(&local.dir.path().join("fleet.sqlite")),
            path(&local.dir.path().join("objects")),
        );
        let (server_cert, server_key, client_ca) = (path(&server.0), path(&server.1), path(&ca));
        let route = format!("ADT^*={QUEUE}");
        let args = [
            "--local-db",
            &db,
            "--local-objects",
            &objects,
            "--listen",
            &addr,
            "--route",
            &route,
            "--allow-unencrypted",
            "--tls-cert",
            &server_cert,
            "--tls-key",
            &server_key,
            "--tls-client-ca",
            &client_ca,
            "--client-facilities",
            "north-feed=NORTH",
        ];
        let log = local.dir.path().join("gateway.log");
        let mut worker = Worker::start(
            "mllp-gateway",
            &args,
            &[("FLEET_LOG_FORMAT", "text".to_string())],
            log,
        );
        let started = tokio::time::Instant::now();
        while !worker.log_text().contains("mllp-gateway listening") {
            if let Some(status) = worker.child.try_wait().unwrap() {
                panic!("the gateway exited ({status}):\n{}", worker.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the gateway did not start listening:\n{}",
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            local,
            worker,
            addr,
            ca,
            north,
            rogue,
            west,
        }
    }

    fn options(&self, identity: Option<&(PathBuf, PathBuf)>) -> ConnectOptions {
        ConnectOptions {
            tls_ca: Some(self.ca.clone()),
            identity: identity.cloned(),
            server_name: Some("localhost".into()),
        }
    }

    /// Connect with `identity` and send `message`: the ACK's MSA-1, MSA-2 and ERR code, or
    /// the error of the handshake or the exchange.
    async fn send(
        &self,
        identity: Option<&(PathBuf, PathBuf)>,
        message: &str,
    ) -> anyhow::Result<(String, String, Option<String>)> {
        let mut client = Client::connect(&self.addr, &self.options(identity)).await?;
        let reply = client.exchange(message.as_bytes(), ANSWER).await?;
        client.close().await;
        let ack = parse_ack(&reply).expect("an ACK");
        Ok((ack.code, ack.control_id, ack.error_code))
    }
}

/// Served; and SIGTERM with the client's connection still open (idle) closes it and exits
/// at once, not at the drain deadline (20 s).
#[tokio::test]
async fn tls_a_client_with_a_certificate_from_the_client_ca_is_served() {
    let mut gw = TlsGateway::start().await;
    let message = adt("TLS1", "NORTH");
    let mut client = Client::connect(&gw.addr, &gw.options(Some(&gw.north)))
        .await
        .unwrap();
    let ack = parse_ack(&client.exchange(message.as_bytes(), ANSWER).await.unwrap()).unwrap();
    assert_eq!(
        (ack.code.as_str(), ack.control_id.as_str(), ack.error_code),
        ("AA", "TLS1", None)
    );
    let bodies: Vec<String> = gw.local.queued().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, [message]);
    // Half the drain deadline (20 s): terminate fails the test if the exit takes longer.
    let (_, status) = gw.worker.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", gw.worker.log_text());
    let log = gw.worker.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("TLS client connected") && l.contains("north-feed")),
        "the log names the client: {log}"
    );
    assert!(log.contains("run finished"), "{log}");
    drop(client);
}

#[tokio::test]
async fn tls_a_client_certificate_from_an_unknown_ca_or_none_is_refused_at_the_handshake() {
    let gw = TlsGateway::start().await;
    let rogue = gw.send(Some(&gw.rogue), &adt("ROGUE1", "NORTH")).await;
    assert!(
        rogue.is_err(),
        "an unknown CA's client was served: {rogue:?}"
    );
    let anonymous = gw.send(None, &adt("ANON1", "NORTH")).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate was served: {anonymous:?}"
    );
    assert!(gw.local.queued().is_empty());
    // The refusals were the handshake's, and the gateway still serves a known client.
    let answer = gw
        .send(Some(&gw.north), &adt("TLS2", "NORTH"))
        .await
        .unwrap();
    assert_eq!(answer.0, "AA");
    let log = gw.worker.log_text();
    let failed = log
        .lines()
        .filter(|l| l.contains("TLS handshake failed"))
        .count();
    assert_eq!(failed, 2, "{log}");
    assert_eq!(gw.local.queued().len(), 1);
}

#[tokio::test]
async fn tls_a_client_sending_as_a_facility_outside_its_mapping_gets_ar() {
    let gw = TlsGateway::start().await;
    let answer = gw
        .send(Some(&gw.north), &adt("SOUTH1", "SOUTH"))
        .await
        .unwrap();
    assert_eq!(answer, ("AR".into(), "SOUTH1".into(), Some("207".into())));
    assert!(gw.local.queued().is_empty());
    let log = gw.worker.log_text();
    let refusal = log
        .lines()
        .find(|l| l.contains("sending facility"))
        .unwrap_or_else(|| panic!("no refusal line: {log}"));
    assert!(
        refusal.contains("127.0.0.1:") && refusal.contains("north-feed"),
        "the refusal names the peer and its certificate: {refusal}"
    );
    // A client the CA vouches for but no mapping names may send as no facility.
    let answer = gw
        .send(Some(&gw.west), &adt("WEST1", "NORTH"))
        .await
        .unwrap();
    assert_eq!(answer, ("AR".into(), "WEST1".into(), Some("207".into())));
    assert!(gw.local.queued().is_empty());
    let log = gw.worker.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("sending facility") && l.contains("west-feed")),
        "{log}"
    );
    for content in [
        "SOUTH",
        "Quillfeather",
        "Rosalind",
        "MRN4821736",
        "19530714",
    ] {
        assert!(
            !log.contains(content),
            "the log holds message content ({content})"
        );
    }
}

#[tokio::test]
async fn tls_a_plain_tcp_client_on_the_tls_port_gets_no_ack() {
    let gw = TlsGateway::start().await;
    let mut conn = Conn::connect(gw.addr.parse().unwrap()).await;
    // The gateway may close before the whole message is written.
    let _ = tokio::io::AsyncWriteExt::write_all(
        &mut conn.stream,
        &mllp_gateway::frame::encode(adt("PLAIN1", "NORTH").as_bytes()),
    )
    .await;
    let answer = conn.frame(ANSWER).await;
    assert!(
        !matches!(answer, Ok(Some(_))),
        "a plain TCP client got a frame back"
    );
    assert!(gw.local.queued().is_empty());
}
