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
    ) -> Result<CertificateAuthorizer, ConfigError> {
        let key = format!("authorizers.{name}");
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
        })
    }

    pub fn token_sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// Judges the forwarded certificate `value`.
    pub fn decide(&self, value: &str) -> Decision {
        let deny = |why: &'static str| Decision::deny(Denial::InvalidCredential(why));
        let Some(der) = der_of(value, self.format) else {
            return deny("the forwarded certificate cannot be read");
        };
        let Ok((_, cert)) = X509Certificate::from_der(&der) else {
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

/// The DER of the certificate in `value`, as `format` writes it.
fn der_of(value: &str, format: CertFormat) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let pem_url = |text: &str| -> Option<Vec<u8>> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let pem = percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .ok()?;
        CertificateDer::from_pem_slice(pem.as_bytes())
            .ok()
            .map(|der| der.to_vec())
    };
    match format {
        CertFormat::PemUrl => pem_url(value.trim()),
        CertFormat::DerBase64 => {
            let first = value.split(',').next()?.trim();
            base64::engine::general_purpose::STANDARD.decode(first).ok()
        }
        CertFormat::Xfcc => {
            // the last element is the one the nearest proxy (the trusted one) wrote
            let element = split_outside_quotes(value, ',').into_iter().last()?;
            let cert = split_outside_quotes(element, ';')
                .into_iter()
                .find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("cert")
                        .then(|| value.trim().trim_matches('"'))
                })?;
            pem_url(cert)
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
        CertificateAuthorizer::build("certs", settings).unwrap()
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
}
