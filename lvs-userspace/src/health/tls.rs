//! TLS client configurations for https checks, built once per process.
//!
//! ldirectord never verifies certificates (`verify_hostname => 0`); that is the default here
//! too, through a verifier that accepts any certificate. With `verify_tls` the server must
//! present a chain to a webpki (Mozilla) root valid for the name checked.

use std::{
    net::IpAddr,
    sync::{Arc, OnceLock},
};

use rustls::{
    ClientConfig, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, InvalidDnsNameError, ServerName, UnixTime},
};

/// Errors building TLS parameters.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The virtual host is not a valid TLS server name.
    #[error("{name:?} is not a valid TLS server name")]
    ServerName {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: InvalidDnsNameError,
    },
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The shared client configuration: verifying against webpki roots or accepting anything.
pub fn client_config(verify: bool) -> Arc<ClientConfig> {
    static VERIFYING: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    static INSECURE: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let cell = if verify { &VERIFYING } else { &INSECURE };
    cell.get_or_init(|| {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions");
        let config = if verify {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider())))
                .with_no_client_auth()
        };
        Arc::new(config)
    })
    .clone()
}

/// The name sent as SNI and verified: the virtual host when set, else the real's address.
pub fn server_name(
    virtual_host: Option<&str>,
    ip: IpAddr,
) -> Result<ServerName<'static>, TlsError> {
    match virtual_host {
        Some(host) => {
            // A "host:port" virtual host names the host only.
            let bare = strip_port(host);
            if let Ok(ip) = bare.trim_matches(['[', ']']).parse::<IpAddr>() {
                return Ok(ServerName::IpAddress(ip.into()));
            }
            ServerName::try_from(bare.to_string()).map_err(|source| TlsError::ServerName {
                name: host.to_string(),
                source,
            })
        }
        None => Ok(ServerName::IpAddress(ip.into())),
    }
}

/// `host` without a trailing `:port` (IPv6 literals must be bracketed to carry one).
pub(crate) fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// A verifier that accepts every certificate (ldirectord's behaviour). Handshake signatures
/// are still checked, so the peer must hold the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_port_forms() {
        assert_eq!(strip_port("www.example.com:8080"), "www.example.com");
        assert_eq!(strip_port("www.example.com"), "www.example.com");
        assert_eq!(strip_port("[::1]:443"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("10.0.0.1:80"), "10.0.0.1");
    }

    #[test]
    fn server_names() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(matches!(
            server_name(None, ip).unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name(Some("www.example.com:443"), ip).unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name(Some("[::1]:443"), ip).unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name(Some("bad name!"), ip).is_err());
    }

    #[test]
    fn configs_are_shared() {
        assert!(Arc::ptr_eq(&client_config(false), &client_config(false)));
        assert!(!Arc::ptr_eq(&client_config(false), &client_config(true)));
    }
}
