//! TLS certificate probes and HTTPS certificate facts against run-time PKI.

use vantage_probes::{Outcome, Reason, VerifyResult};

use crate::fixtures::{
    closing_target, garbage_target, https_target, mtls_target, tls_target, Leaf, Pki,
};
use crate::support::{load_in, outcome, run_all, write_config_in};

fn tls_probe(name: &str, addr: std::net::SocketAddr, expect: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"tls\"\ntarget = \"{addr}\"\nserver_name = \"localhost\"\ntls = {{ ca = \"ca.pem\" }}\ntimeout = \"2s\"\n[probe.expect]\n{expect}\n"
    )
}

async fn run_in(pki: Pki, cfg: &str) -> (Pki, Vec<(String, Outcome)>) {
    let dir = tempfile::tempdir_in(pki.path()).unwrap();
    std::fs::copy(pki.ca_path(), dir.path().join("ca.pem")).unwrap();
    let c = write_config_in(dir, cfg);
    let config = load_in(&c.path, &[]).unwrap_or_else(|e| panic!("{e}"));
    let all = run_all(config).await;
    (pki, all)
}

#[tokio::test]
async fn certificate_health_model() {
    let pki = Pki::new();
    let valid = pki.leaf(&["localhost"], -1, 400);
    let soon = pki.leaf(&["localhost"], -1, 10);
    let expired = pki.leaf(&["localhost"], -30, -2);
    let not_yet = pki.leaf(&["localhost"], 5, 60);
    let wrong_host = pki.leaf(&["other.example"], -1, 400);
    let self_signed = Pki::self_signed(&["localhost"], 400);
    let (short_inter, inter_not_after) = pki.leaf_via_intermediate(&["localhost"], 400, 20);
    // A stale extra certificate the server still sends: it must not drive the effective expiry.
    let stale = Pki::self_signed(&["stale.example"], -3);
    let mut with_stale = pki.leaf(&["localhost"], -1, 400);
    with_stale.chain.push(stale.chain[0].clone());

    let leaves: Vec<(&str, &Leaf)> = vec![
        ("valid", &valid),
        ("soon-30", &soon),
        ("soon-5", &soon),
        ("expired", &expired),
        ("not-yet", &not_yet),
        ("wrong-host", &wrong_host),
        ("self-signed", &self_signed),
        ("self-signed-noverify", &self_signed),
        ("intermediate", &short_inter),
        ("stale-extra", &with_stale),
    ];
    let mut servers = Vec::new();
    let mut cfg = String::new();
    for (name, leaf) in &leaves {
        let server = tls_target(leaf.chain.clone(), leaf.key()).await;
        let expect = match *name {
            "soon-30" => "min_days_remaining = 30",
            "soon-5" => "min_days_remaining = 5",
            "self-signed-noverify" => "verify = false",
            _ => "min_version = \"1.2\"",
        };
        cfg += &tls_probe(name, server.addr, expect);
        servers.push(server);
    }
    let (_pki, all) = run_in(pki, &cfg).await;

    let check = |name: &str, reason: Option<Reason>, verify: VerifyResult, evidence: &str| {
        let o = outcome(&all, name);
        assert_eq!(o.reason, reason, "{name}: {o:#?}");
        let tls = o
            .facts
            .tls()
            .unwrap_or_else(|| panic!("{name}: no TLS facts"));
        assert_eq!(tls.verify_result, verify, "{name}");
        assert!(
            o.evidence.contains(evidence),
            "{name}: {:?} lacks {evidence:?}",
            o.evidence
        );
        let leaf = leaves.iter().find(|(n, _)| *n == name).unwrap().1;
        // The certificate's exact notAfter, to the second, in the facts.
        assert_eq!(
            o.facts.tls().map(|t| t.leaf_not_after),
            Some(leaf.not_after),
            "{name}"
        );
        assert_eq!(tls.leaf_not_after, leaf.not_after, "{name}");
        tls.clone()
    };
    // 399 or 400 days, depending on whether a second turned since the certificate was made.
    let t = check("valid", None, VerifyResult::Ok, "certificate expires in ");
    assert_eq!(t.effective_not_after, valid.not_after);
    assert_eq!(t.version, "1.3");
    assert!(t.chain[0].sans.contains(&"localhost".to_string()));
    assert_eq!(t.chain[0].fingerprint_sha256.len(), 64);
    check(
        "soon-30",
        Some(Reason::CertExpiring),
        VerifyResult::Ok,
        "required at least 30 days",
    );
    check("soon-5", None, VerifyResult::Ok, "certificate expires in ");
    let t = check(
        "expired",
        Some(Reason::TlsVerify),
        VerifyResult::Expired,
        "expired",
    );
    assert_eq!(t.verified_chain_not_after, None);
    assert_eq!(t.effective_not_after, expired.not_after);
    check(
        "not-yet",
        Some(Reason::TlsVerify),
        VerifyResult::NotYetValid,
        "not_yet_valid",
    );
    check(
        "wrong-host",
        Some(Reason::TlsVerify),
        VerifyResult::HostnameMismatch,
        "hostname_mismatch",
    );
    check(
        "self-signed",
        Some(Reason::TlsVerify),
        VerifyResult::UnknownIssuer,
        "unknown_issuer",
    );
    check(
        "self-signed-noverify",
        None,
        VerifyResult::UnknownIssuer,
        "TLS 1.3",
    );
    let t = check(
        "intermediate",
        None,
        VerifyResult::Ok,
        "certificate expires in ",
    );
    assert_eq!(t.effective_not_after, inter_not_after);
    assert_eq!(t.verified_chain_not_after, Some(inter_not_after));
    assert_eq!(t.earliest_not_after, inter_not_after);
    let t = check(
        "stale-extra",
        None,
        VerifyResult::Ok,
        "certificate expires in ",
    );
    assert_eq!(
        t.earliest_not_after, stale.not_after,
        "earliest counts every presented cert"
    );
    assert_eq!(
        t.effective_not_after, with_stale.not_after,
        "effective ignores the stale one"
    );
}

#[tokio::test]
async fn https_probes_collect_certificates() {
    let pki = Pki::new();
    let soon = pki.leaf(&["localhost"], -1, 10);
    let expired = pki.leaf(&["localhost"], -30, -2);
    let server = https_target(soon.chain.clone(), soon.key()).await;
    let expired_server = https_target(expired.chain.clone(), expired.key()).await;
    let probe = |name: &str, url: String, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ntimeout = \"2s\"\ntls = {{ ca = \"ca.pem\", server_name = \"localhost\"{extra} }}\n"
        )
    };
    let mut cfg = String::new();
    cfg += &probe("plain", server.https_url("/ok"), "");
    cfg += &(probe("min-30", server.https_url("/ok"), "") + "[probe.expect]\ncert_min_days = 30\n");
    cfg += &(probe("min-5", server.https_url("/ok"), "") + "[probe.expect]\ncert_min_days = 5\n");
    cfg += &probe("expired", expired_server.https_url("/ok"), "");
    cfg += &probe(
        "expired-insecure",
        expired_server.https_url("/ok"),
        ", insecure_skip_verify = true",
    );
    let (_pki, all) = run_in(pki, &cfg).await;

    let o = outcome(&all, "plain");
    assert!(o.success(), "{o:#?}");
    assert!(o.facts.http_facts().unwrap().ssl);
    assert_eq!(
        o.facts.tls().map(|t| t.leaf_not_after),
        Some(soon.not_after)
    );
    assert!(o.phases.tls > std::time::Duration::ZERO);
    assert_eq!(outcome(&all, "min-30").reason, Some(Reason::CertExpiring));
    assert!(outcome(&all, "min-5").success());
    let o = outcome(&all, "expired");
    assert_eq!(o.reason, Some(Reason::TlsVerify));
    assert!(o.evidence.contains("expired"));
    assert_eq!(
        o.facts.tls().map(|t| t.leaf_not_after),
        Some(expired.not_after)
    );
    assert_eq!(
        o.facts.status(),
        None,
        "no request is sent over an unverified connection"
    );
    let o = outcome(&all, "expired-insecure");
    assert!(o.success(), "{o:#?}");
    assert_eq!(o.facts.tls().unwrap().verify_result, VerifyResult::Expired);
}

#[tokio::test]
async fn broken_handshakes_fail_cleanly() {
    let pki = Pki::new();
    let closing = closing_target().await;
    let garbage = garbage_target().await;
    let mut cfg = String::new();
    cfg += &tls_probe("closing", closing.addr, "");
    cfg += &tls_probe("garbage", garbage.addr, "");
    let (_pki, all) = run_in(pki, &cfg).await;
    for name in ["closing", "garbage"] {
        let o = outcome(&all, name);
        assert_eq!(o.reason, Some(Reason::TlsHandshake), "{name}: {o:#?}");
        assert!(o.duration < std::time::Duration::from_secs(2), "{name}");
    }
}

#[tokio::test]
async fn client_certificates() {
    let pki = Pki::new();
    let server_leaf = pki.leaf(&["localhost"], -1, 90);
    let client_leaf = pki.leaf(&["vantage-client"], -1, 90);
    pki.write_pem(&client_leaf, "client");
    let server = mtls_target(server_leaf.chain.clone(), server_leaf.key(), pki.ca_der()).await;
    let dir = pki.path().to_path_buf();
    let probe = |name: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{}\"\ntimeout = \"2s\"\ntls = {{ ca = \"{}\", server_name = \"localhost\"{extra} }}\n",
            server.https_url("/ok"),
            dir.join("ca.pem").display()
        )
    };
    let cfg = probe(
        "with-cert",
        &format!(
            ", client_cert = \"{0}/client.pem\", client_key = \"{0}/client.key\"",
            dir.display()
        ),
    ) + &probe("without-cert", "");
    let (_pki, all) = run_in(pki, &cfg).await;
    let o = outcome(&all, "with-cert");
    assert!(o.success(), "{o:#?}");
    let o = outcome(&all, "without-cert");
    assert_eq!(o.reason, Some(Reason::TlsHandshake), "{o:#?}");
}

#[tokio::test]
async fn reports_show_certificate_facts() {
    let pki = Pki::new();
    let soon = pki.leaf(&["localhost"], -1, 10);
    let server = tls_target(soon.chain.clone(), soon.key()).await;
    let https = https_target(soon.chain.clone(), soon.key()).await;
    let cfg = crate::support::write_config_in(
        tempfile::tempdir_in(pki.path()).unwrap(),
        &tls_probe("cert", server.addr, "min_days_remaining = 5"),
    );
    std::fs::copy(pki.ca_path(), cfg.dir.path().join("ca.pem")).unwrap();

    let text = crate::support::vantage(&["check"], &[], cfg.dir.path()).await;
    assert_eq!(text.code, 0, "{}{}", text.stdout, text.stderr);
    assert!(
        text.stdout.contains("certificate expires in 9 days")
            || text.stdout.contains("certificate expires in 10 days"),
        "{}",
        text.stdout
    );
    let json = crate::support::vantage(&["check", "--format", "json"], &[], cfg.dir.path()).await;
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let facts = &doc["probes"][0]["facts"];
    assert_eq!(facts["cert_not_after"], soon.not_after);
    assert_eq!(facts["tls"]["effective_not_after"], soon.not_after);
    assert_eq!(facts["tls"]["verify_result"], "ok");
    assert_eq!(facts["tls"]["chain"][0]["sans"][0], "localhost");

    // Ad hoc, without our CA: the verdict is unknown_issuer, and the facts are still there.
    let adhoc =
        crate::support::vantage(&["probe", &https.https_url("/ok")], &[], cfg.dir.path()).await;
    assert_eq!(adhoc.code, 1);
    assert!(
        adhoc.stdout.contains("failure (tls_verify)"),
        "{}",
        adhoc.stdout
    );
    assert!(
        adhoc.stdout.contains("verify unknown_issuer"),
        "{}",
        adhoc.stdout
    );
    assert!(
        adhoc.stdout.contains("expiry: certificate expires in"),
        "{}",
        adhoc.stdout
    );
    let tls = crate::support::vantage(
        &["probe", "--kind", "tls", &server.addr.to_string()],
        &[],
        cfg.dir.path(),
    )
    .await;
    assert_eq!(tls.code, 1);
    assert!(
        tls.stdout.contains("certificate: CN=localhost"),
        "{}",
        tls.stdout
    );
}
