//! The `certificate` authorizer: the client certificate a trusted proxy verified (mTLS)
//! and forwarded, turned into an identity.
//!
//! Takes: a header value from its token sources, in the proxy's format: Envoy's
//! `X-Forwarded-Client-Cert` (`xfcc`: the last element's `Cert`), a URL-encoded PEM
//! (`pem-url`: nginx's `$ssl_client_escaped_cert`, the gRPC listener's
//! `x-envoy-peer-certificate`) or a base64 DER (`der-base64`: Traefik's
//! `passTLSClientCert`, Caddy's `{http.request.tls.client.certificate_der_base64}`).
//! Returns: an allow whose user is the certificate's subject CN, a SAN URI (a SPIFFE ID),
//! DNS name or email, as configured, when it is within its validity and matches the
//! `allow` and `issuers` rules; a deny otherwise. Must never: take a certificate that
//! cannot be parsed, is expired or not yet valid, or names no user for an identity; or
//! read a header a client could set (the shipped proxy configurations set or strip every
//! header name this reads).

use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::credential::{TokenSource, parse_sources};
use crate::decision::{Decision, Denial};
use crate::identity::Identity;
use crate::settings::{ConfigError, StringList};

/// How the proxy writes the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertFormat {
    /// Envoy's `X-Forwarded-Client-Cert`.
    #[default]
    Xfcc,
    /// A URL-encoded PEM.
    PemUrl,
    /// A base64 DER (the first of a comma-separated chain).
    DerBase64,
}

crate::settings::choices!(CertFormat {
    "xfcc" => Xfcc,
    "pem-url" => PemUrl,
    "der-base64" => DerBase64,
});

/// Which field names the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserField {
    #[default]
    SubjectCn,
    SanUri,
    SanDns,
    SanEmail,
}

crate::settings::choices!(UserField {
    "subject.cn" => SubjectCn,
    "san.uri" => SanUri,
    "san.dns" => SanDns,
    "san.email" => SanEmail,
});

/// `[authorizers.NAME]` with `type = "certificate"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSettings {
    /// Default `header:x-forwarded-client-cert`.
    #[serde(default)]
    pub token_sources: Option<StringList>,
    #[serde(default)]
    pub format: CertFormat,
    #[serde(default)]
    pub user_id: UserField,
    /// Globs the user field must match (one of); none: any.
    #[serde(default)]
    pub allow: Option<StringList>,
    /// Globs the issuer's CN must match (one of); none: any.
    #[serde(default)]
    pub issuers: Option<StringList>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// A PEM bundle of the CAs a certificate must chain to (for a proxy that forwards a
    /// certificate it did not verify); none: the proxy verified it.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// A ready `certificate` authorizer.
#[derive(Debug)]
pub struct CertificateAuthorizer {
    sources: Vec<TokenSource>,
    format: CertFormat,
    user_id: UserField,
    allow: Vec<glob::Pattern>,
    issuers: Vec<glob::Pattern>,
    roles: Vec<std::sync::Arc<str>>,
    verifier: Option<std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

fn patterns(key: &str, list: Option<StringList>) -> Result<Vec<glob::Pattern>, ConfigError> {
    list.map(|l| l.0)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            glob::Pattern::new(p).map_err(|e| ConfigError::invalid(key, format!("{p:?}: {e}")))
        })
        .collect()
}

impl CertificateAuthorizer {
    pub fn build(
        name: &str,
        settings: CertificateSettings,
        base_dir: &std::path::Path,
    ) -> Result<CertificateAuthorizer, ConfigError> {
        let key = format!("authorizers.{name}");
        let verifier = match &settings.ca_file {
            None => None,
            Some(file) => {
                let ca_key = format!("{key}.ca_file");
                let roots = crate::load_roots(&ca_key, &base_dir.join(file))?;
                // rustls's own client-certificate check: the chain to one of these roots,
                // each certificate's validity, and a client-authentication key usage
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder(std::sync::Arc::new(roots))
                        .build()
                        .map_err(|e| ConfigError::invalid(&ca_key, e.to_string()))?;
                Some(verifier)
            }
        };
        let sources = match &settings.token_sources {
            None => vec![TokenSource::Header("x-forwarded-client-cert".into())],
            Some(_) => parse_sources(
                &format!("{key}.token_sources"),
                settings.token_sources.as_ref(),
            )?,
        };
        Ok(CertificateAuthorizer {
            sources,
            format: settings.format,
            user_id: settings.user_id,
            allow: patterns(&format!("{key}.allow"), settings.allow)?,
            issuers: patterns(&format!("{key}.issuers"), settings.issuers)?,
            roles: settings
                .roles
                .iter()
                .map(|r| std::sync::Arc::from(r.as_str()))
                .collect(),
            verifier,
        })
    }

    pub fn token_sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// Judges the forwarded certificate `value`.
    pub fn decide(&self, value: &str) -> Decision {
        let deny = |why: &'static str| Decision::deny(Denial::InvalidCredential(why));
        let Some(chain) = chain_of(value, self.format) else {
            return deny("the forwarded certificate cannot be read");
        };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return deny("the forwarded certificate cannot be read");
        };
        if let Some(verifier) = &self.verifier {
            // Why: this proxy forwards what the client presented without checking it, so
            // the certificate counts only if it chains to the configured CAs.
            let now = rustls::pki_types::UnixTime::now();
            if verifier
                .verify_client_cert(leaf, intermediates, now)
                .is_err()
            {
                return deny("the certificate does not chain to the configured CAs");
            }
        }
        let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
            return deny("the forwarded certificate cannot be parsed");
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        match x509_parser::time::ASN1Time::from_timestamp(now) {
            Ok(at) if cert.validity().is_valid_at(at) => {}
            _ => return deny("the certificate is expired or not yet valid"),
        }
        if !self.issuers.is_empty() {
            let issuer = cert
                .issuer()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok());
            if !issuer.is_some_and(|cn| self.issuers.iter().any(|p| p.matches(cn))) {
                return deny("the certificate's issuer is not one the authorizer accepts");
            }
        }
        let sans: Vec<GeneralName<'_>> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| ext.value.general_names.clone())
            .unwrap_or_default();
        let user = match self.user_id {
            UserField::SubjectCn => cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok()),
            field => san_of(&sans, field),
        };
        // a missing field names no one: never an allow
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            return deny("the certificate names no user in the configured field");
        };
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(user)) {
            return Decision::deny(Denial::Forbidden(
                "the certificate's user is not one the authorizer allows",
            ));
        }
        let email = san_of(&sans, UserField::SanEmail).unwrap_or_default();
        Decision::allow(
            Identity {
                user_id: user.into(),
                email: email.into(),
                roles: self.roles.iter().cloned().collect(),
                ..Identity::default()
            },
            None,
        )
    }
}

/// The first SAN of the kind `field` names.
fn san_of<'a>(sans: &[GeneralName<'a>], field: UserField) -> Option<&'a str> {
    sans.iter().find_map(|name| match (field, name) {
        (UserField::SanUri, GeneralName::URI(uri)) => Some(*uri),
        (UserField::SanDns, GeneralName::DNSName(dns)) => Some(*dns),
        (UserField::SanEmail, GeneralName::RFC822Name(email)) => Some(*email),
        _ => None,
    })
}

/// The certificate in `value` (first) and any chain the proxy sent with it, as DER.
fn chain_of(value: &str, format: CertFormat) -> Option<Vec<CertificateDer<'static>>> {
    use base64::Engine as _;
    let pem_url = |text: &str| -> Option<Vec<CertificateDer<'static>>> {
        let pem = percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .ok()?;
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        (!chain.is_empty()).then_some(chain)
    };
    match format {
        CertFormat::PemUrl => pem_url(value.trim()),
        CertFormat::DerBase64 => {
            let decode = |part: &str| {
                base64::engine::general_purpose::STANDARD
                    .decode(part.trim())
                    .ok()
                    .map(CertificateDer::from)
            };
            let mut parts = value.split(',');
            let leaf = decode(parts.next()?)?;
            // an unreadable intermediate only fails to help a chain: it cannot admit
            Some(
                std::iter::once(leaf)
                    .chain(parts.filter_map(decode))
                    .collect(),
            )
        }
        CertFormat::Xfcc => {
            // the last element is the one the nearest proxy (the trusted one) wrote
            let element = split_outside_quotes(value, ',').into_iter().last()?;
            let field = |name: &str| {
                split_outside_quotes(element, ';')
                    .into_iter()
                    .find_map(|pair| {
                        let (key, value) = pair.split_once('=')?;
                        key.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| value.trim().trim_matches('"'))
                    })
            };
            let leaf = pem_url(field("cert")?)?.into_iter().next()?;
            // `Chain` holds the leaf again, then its intermediates
            let rest = field("chain").and_then(pem_url).unwrap_or_default();
            let intermediates: Vec<_> = rest.into_iter().filter(|c| c != &leaf).collect();
            Some(std::iter::once(leaf).chain(intermediates).collect())
        }
    }
}

/// `text` split at `separator`, except inside double quotes.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (at, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..at]);
                start = at + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Verdict;

    const CERT: &str = include_str!("../../tests/fixtures/backend.cert.pem");

    fn build(text: &str) -> CertificateAuthorizer {
        let settings: CertificateSettings = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        CertificateAuthorizer::build(
            "certs",
            settings,
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        )
        .unwrap()
    }

    fn url_encoded() -> String {
        percent_encoding::utf8_percent_encode(CERT, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    fn user(decision: Decision) -> Option<String> {
        match decision.verdict {
            Verdict::Allow(identity) => Some(identity.user_id.to_string()),
            _ => None,
        }
    }

    #[test]
    fn each_proxy_format_reads_the_same_certificate() {
        use base64::Engine as _;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let xfcc = format!(
            "By=spiffe://a;Hash=1;Cert=\"{}\";Subject=\"CN=forged, O=x\",By=spiffe://b;Hash=2;Cert=\"{}\";Subject=\"CN=localhost\"",
            "garbage",
            url_encoded()
        );
        assert_eq!(user(build("").decide(&xfcc)).as_deref(), Some("localhost"));
        assert_eq!(
            user(build("format = \"pem-url\"").decide(&url_encoded())).as_deref(),
            Some("localhost")
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        assert_eq!(
            user(
                build("format = \"der-base64\"\nuser_id = \"san.dns\"")
                    .decide(&format!("{b64},other"))
            )
            .as_deref(),
            Some("localhost")
        );
    }

    #[test]
    fn rules_on_the_user_and_the_issuer_and_missing_fields_deny() {
        let pem = url_encoded();
        let pem_url = |extra: &str| build(&format!("format = \"pem-url\"\n{extra}"));
        assert!(user(pem_url("allow = [\"local*\"]").decide(&pem)).is_some());
        assert!(user(pem_url("allow = [\"svc-*\"]").decide(&pem)).is_none());
        assert!(user(pem_url("issuers = [\"verdict test CA\"]").decide(&pem)).is_some());
        assert!(user(pem_url("issuers = [\"Other CA\"]").decide(&pem)).is_none());
        // no SAN URI in this certificate: a missing field names no one
        assert!(user(pem_url("user_id = \"san.uri\"").decide(&pem)).is_none());
        assert!(user(pem_url("").decide("not a certificate")).is_none());
        assert!(user(build("").decide("By=x;Hash=y")).is_none());
    }

    const CLIENT: &str = include_str!("../../tests/fixtures/client.cert.pem");

    fn encoded(pem: &str) -> String {
        percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    #[test]
    fn a_ca_file_admits_only_client_certificates_that_chain_to_it() {
        crate::init_crypto();
        let verified = |ca: &str| {
            build(&format!(
                "format = \"pem-url\"\nuser_id = \"san.uri\"\nca_file = \"tests/fixtures/{ca}\""
            ))
        };
        let client = encoded(CLIENT);
        assert_eq!(
            user(verified("client-ca.pem").decide(&client)).as_deref(),
            Some("spiffe://example.org/ns/default/sa/app")
        );
        // another CA's certificate, even one for the client, is nobody
        assert!(user(verified("test-ca.pem").decide(&client)).is_none());
        // a look-alike: an allowed kind of SPIFFE ID, an issuer of the same name, another key
        let rogue = encoded(include_str!("../../tests/fixtures/rogue-client.cert.pem"));
        assert!(
            user(build("format = \"pem-url\"\nuser_id = \"san.uri\"").decide(&rogue)).is_some()
        );
        assert!(user(verified("client-ca.pem").decide(&rogue)).is_none());
        // a certificate of the right CA made for a server is not a client's
        let server = build("format = \"pem-url\"\nca_file = \"tests/fixtures/test-ca.pem\"");
        assert!(user(server.decide(&url_encoded())).is_none());
        // the client's CA sent as if it were the client is not chained to itself as a leaf
        let ca_as_leaf = encoded(include_str!("../../tests/fixtures/client-ca.pem"));
        assert!(user(verified("client-ca.pem").decide(&ca_as_leaf)).is_none());
        // through Envoy's XFCC, with the chain it can add
        let xfcc = format!("Hash=1;Cert=\"{client}\";Chain=\"{client}\"");
        let by_xfcc = build("user_id = \"san.email\"\nca_file = \"tests/fixtures/client-ca.pem\"");
        assert_eq!(
            user(by_xfcc.decide(&xfcc)).as_deref(),
            Some("app@example.org")
        );
    }

    #[test]
    fn a_ca_file_that_holds_no_certificate_is_refused() {
        let settings: CertificateSettings = config::Config::builder()
            .add_source(config::File::from_str(
                "ca_file = \"tests/fixtures/rsa.pub.pem\"",
                config::FileFormat::Toml,
            ))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        let error = CertificateAuthorizer::build(
            "certs",
            settings,
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        )
        .unwrap_err();
        assert!(error.to_string().contains("ca_file"), "{error}");
    }
}
