//! TLS for the unit tests' fake servers on loopback (https, ldaps, pop3s, SMTP's STARTTLS).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// An acceptor with a fresh self-signed certificate for `names`, and that certificate (PEM),
/// for a client that is to trust it.
pub fn acceptor(names: &[&str]) -> (TlsAcceptor, String) {
    let cert =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("a self-signed certificate");
    let pem = cert.cert.pem();
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("the default protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("the certificate and key");
    (TlsAcceptor::from(Arc::new(config)), pem)
}
