//! The root certificates a function's HTTPS client trusts. AWS's endpoints in the commercial and
//! GovCloud partitions present certificates of Amazon Trust Services, which chain to Amazon Root
//! CA 1 to 4 (cross-signed by Starfield Services Root G2): trusting those five, built into the
//! function, is both narrower than the system's hundred-odd roots (no other authority can vouch
//! for an endpoint the function sends its role's requests to) and cheaper. The system's bundle
//! was read, decoded and parsed at every cold start, and the trust store built again for each
//! client: a third of a function's start-up here.
//!
//! The system's roots stay where those five may not be enough: when the operator points
//! `SSL_CERT_FILE` or `SSL_CERT_DIR` at a bundle of their own (a proxy's authority, say), when
//! `AWS_ENDPOINT_URL` is an HTTPS endpoint of someone else's, and in partitions whose endpoints
//! need not chain to Amazon Trust Services (China, the isolated regions).

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Amazon Root CA 1, 2, 3 and 4 and Starfield Services Root Certificate Authority G2, as
/// Amazon Trust Services publishes them (PEM).
pub const AMAZON_TRUST_SERVICES: &str = include_str!("amazon-trust-services.pem");

/// Variables that make a function trust the system's roots instead.
pub mod env {
    pub const CERT_FILE: &str = "SSL_CERT_FILE";
    pub const CERT_DIR: &str = "SSL_CERT_DIR";
}

/// The roots a client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// The five roots of Amazon Trust Services, built in.
    AmazonTrustServices,
    /// The system's (or `SSL_CERT_FILE`'s and `SSL_CERT_DIR`'s) certificates, read from disk.
    System,
}

impl Roots {
    /// The roots a function in `region` trusts, given its endpoint (`AWS_ENDPOINT_URL`, when
    /// set and not ignored) and the variables `lookup` reads.
    pub fn for_function(
        region: &str,
        endpoint_url: Option<&str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Roots {
        let chosen_bundle = [env::CERT_FILE, env::CERT_DIR]
            .into_iter()
            .any(|name| lookup(name).is_some_and(|value| !value.trim().is_empty()));
        let someone_elses_https = endpoint_url.is_some_and(|url| {
            url.trim_start()
                .get(..8)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        });
        if chosen_bundle || someone_elses_https || !served_by_amazon_trust_services(region) {
            Roots::System
        } else {
            Roots::AmazonTrustServices
        }
    }

    /// The trust store of these roots. The system's are read from disk each time: a client
    /// asks once, for its first request.
    pub fn store(self) -> Result<RootCertStore, RootsError> {
        let mut store = RootCertStore::empty();
        match self {
            Roots::AmazonTrustServices => {
                for certificate in CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES.as_bytes())
                {
                    let certificate =
                        certificate.map_err(|error| RootsError::BuiltIn(error.to_string()))?;
                    store
                        .add(certificate)
                        .map_err(|error| RootsError::BuiltIn(error.to_string()))?;
                }
            }
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _unparsable) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(RootsError::NoSystemRoots {
                        problems: found.errors.iter().map(ToString::to_string).collect(),
                    });
                }
            }
        }
        Ok(store)
    }
}

/// Why a client has no roots to trust.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("the built-in root certificates do not parse: {0}")]
    BuiltIn(String),
    #[error(
        "no usable root certificate in the system's store ({}, {} or the platform's bundle){}",
        env::CERT_FILE,
        env::CERT_DIR,
        problems.iter().map(|problem| format!("; {problem}")).collect::<String>()
    )]
    NoSystemRoots { problems: Vec<String> },
}

/// Whether AWS's endpoints in `region` present Amazon Trust Services certificates: every region
/// of the commercial and GovCloud partitions, not China's (`cn-`) nor the isolated ones
/// (`us-iso-`, `us-isob-`, `eu-isoe-`, ...).
fn served_by_amazon_trust_services(region: &str) -> bool {
    let region = region.trim().to_ascii_lowercase();
    !region.starts_with("cn-") && !region.split('-').any(|part| part.starts_with("iso"))
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    use crate::config::env::lookup_in as lookup;

    #[test]
    fn a_function_trusts_amazon_trust_services_in_the_commercial_and_govcloud_partitions() {
        for region in [
            "us-east-1",
            "eu-west-3",
            "ap-southeast-5",
            "us-gov-west-1",
            "il-central-1",
        ] {
            assert_eq!(
                Roots::for_function(region, None, lookup(&[])),
                Roots::AmazonTrustServices,
                "{region}"
            );
        }
    }

    #[test]
    fn china_and_the_isolated_regions_keep_the_systems_roots() {
        for region in [
            "cn-north-1",
            "cn-northwest-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "us-isof-south-1",
        ] {
            assert_eq!(
                Roots::for_function(region, None, lookup(&[])),
                Roots::System,
                "{region}"
            );
        }
    }

    #[test]
    fn an_operators_bundle_or_an_https_endpoint_of_someone_elses_keeps_the_systems_roots() {
        for variable in [env::CERT_FILE, env::CERT_DIR] {
            assert_eq!(
                Roots::for_function(
                    "us-east-1",
                    None,
                    lookup(&[(variable, "/opt/proxy-ca.pem")])
                ),
                Roots::System,
                "{variable}"
            );
            // Set but empty is not set.
            assert_eq!(
                Roots::for_function("us-east-1", None, lookup(&[(variable, " ")])),
                Roots::AmazonTrustServices
            );
        }
        assert_eq!(
            Roots::for_function(
                "us-east-1",
                Some("HTTPS://aws.internal.example:8443"),
                lookup(&[])
            ),
            Roots::System
        );
        // A plain HTTP endpoint (a local emulator) needs no roots at all.
        assert_eq!(
            Roots::for_function("us-east-1", Some("http://127.0.0.1:5000"), lookup(&[])),
            Roots::AmazonTrustServices
        );
    }

    #[test]
    fn the_built_in_roots_are_the_five_amazon_trust_services_publishes() {
        // SHA-256 of each certificate, as Amazon Trust Services lists them.
        let published = [
            "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
            "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
            "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
            "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
            "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services Root G2
        ];
        let found: Vec<String> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES.as_bytes())
            .map(|certificate| {
                let der = certificate.expect("a certificate");
                ring::digest::digest(&ring::digest::SHA256, der.as_ref())
                    .as_ref()
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(found, published);
    }

    #[test]
    fn the_built_in_roots_make_a_store_of_five() {
        let store = Roots::AmazonTrustServices
            .store()
            .expect("the built-in roots");
        assert_eq!(store.len(), 5);
    }
}
