//! jsonwebtoken's signature checks on `ring`, the one crypto library of the build (rustls
//! runs on it too), through the crate's own extension point (`CryptoProvider`).
//!
//! Takes: an algorithm and a key as jsonwebtoken parsed them (an HMAC secret, a public key
//! in DER or RSA components, a private key for the tests that sign). Returns: a verifier
//! or a signer for exactly that algorithm. Must never: verify with a key of another
//! family than the algorithm's (an RSA public key used as an HMAC secret is the classic
//! confusion), or compare an HMAC tag other than in constant time (`ring::hmac::verify`).
//! No parsing of its own: ring reads every key, jsonwebtoken every token.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self as sig, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{self as ring_sig, KeyPair as _};

/// The provider `crate::init_crypto` installs.
pub static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key,
        rsa_pub_components_from_public_key,
        ec_pub_components_from_private_key,
        ed_pub_components_from_private_key,
        compute_digest,
    },
};

fn hmac_of(algorithm: Algorithm) -> Option<ring::hmac::Algorithm> {
    match algorithm {
        Algorithm::HS256 => Some(ring::hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(ring::hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(ring::hmac::HMAC_SHA512),
        _ => None,
    }
}

fn verification_of(algorithm: Algorithm) -> Option<&'static dyn ring_sig::VerificationAlgorithm> {
    if let Some(rsa) = rsa_parameters_of(algorithm) {
        return Some(rsa);
    }
    Some(match algorithm {
        Algorithm::ES256 => &ring_sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &ring_sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &ring_sig::ED25519,
        _ => return None,
    })
}

fn rsa_parameters_of(algorithm: Algorithm) -> Option<&'static ring_sig::RsaParameters> {
    Some(match algorithm {
        Algorithm::RS256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &ring_sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &ring_sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &ring_sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// One algorithm's check with one key.
struct RingVerifier {
    algorithm: Algorithm,
    key: Checked,
}

enum Checked {
    Hmac(ring::hmac::Key),
    Der(&'static dyn ring_sig::VerificationAlgorithm, Vec<u8>),
    RsaComponents(&'static ring_sig::RsaParameters, Vec<u8>, Vec<u8>),
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let algorithm = *algorithm;
    // Trust decision: the key must be of the algorithm's own family
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let checked = match (hmac_of(algorithm), key.kind()) {
        (Some(hmac), DecodingKeyKind::SecretOrDer(secret)) => {
            Checked::Hmac(ring::hmac::Key::new(hmac, secret))
        }
        (Some(_), DecodingKeyKind::RsaModulusExponent { .. }) => {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        (None, DecodingKeyKind::SecretOrDer(der)) => Checked::Der(
            verification_of(algorithm).ok_or(ErrorKind::InvalidAlgorithm)?,
            der.clone(),
        ),
        (None, DecodingKeyKind::RsaModulusExponent { n, e }) => Checked::RsaComponents(
            rsa_parameters_of(algorithm).ok_or(ErrorKind::InvalidKeyFormat)?,
            n.clone(),
            e.clone(),
        ),
    };
    Ok(Box::new(RingVerifier {
        algorithm,
        key: checked,
    }))
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), sig::Error> {
        let checked = match &self.key {
            Checked::Hmac(key) => ring::hmac::verify(key, message, signature),
            Checked::Der(algorithm, der) => {
                ring_sig::UnparsedPublicKey::new(*algorithm, der).verify(message, signature)
            }
            Checked::RsaComponents(parameters, n, e) => {
                ring_sig::RsaPublicKeyComponents { n, e }.verify(parameters, message, signature)
            }
        };
        checked.map_err(|_| sig::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// One algorithm's signature with one private key (verdict signs nothing; its tests do).
struct RingSigner {
    algorithm: Algorithm,
    key: Vec<u8>,
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingSigner {
        algorithm: *algorithm,
        key: key.as_bytes().to_vec(),
    }))
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, sig::Error> {
        let rng = ring::rand::SystemRandom::new();
        fn fail<E>(_: E) -> sig::Error {
            sig::Error::new()
        }
        if let Some(hmac) = hmac_of(self.algorithm) {
            let key = ring::hmac::Key::new(hmac, &self.key);
            return Ok(ring::hmac::sign(&key, message).as_ref().to_vec());
        }
        match self.algorithm {
            Algorithm::ES256 | Algorithm::ES384 => {
                let signing = match self.algorithm {
                    Algorithm::ES256 => &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                    _ => &ring_sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                };
                let pair =
                    ring_sig::EcdsaKeyPair::from_pkcs8(signing, &self.key, &rng).map_err(fail)?;
                Ok(pair.sign(&rng, message).map_err(fail)?.as_ref().to_vec())
            }
            Algorithm::EdDSA => {
                let pair = ring_sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.key)
                    .map_err(fail)?;
                Ok(pair.sign(message).as_ref().to_vec())
            }
            _ => {
                let padding: &'static dyn ring_sig::RsaEncoding = match self.algorithm {
                    Algorithm::RS256 => &ring_sig::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &ring_sig::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &ring_sig::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &ring_sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &ring_sig::RSA_PSS_SHA384,
                    _ => &ring_sig::RSA_PSS_SHA512,
                };
                let pair = ring_sig::RsaKeyPair::from_der(&self.key).map_err(fail)?;
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut signature)
                    .map_err(fail)?;
                Ok(signature)
            }
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn rsa_pub_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let pair =
        ring_sig::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let components: ring_sig::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
    Ok((components.n, components.e))
}

fn rsa_pub_components_from_public_key(_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    // ring does not parse a bare RSA public key into its parts; verdict never asks it to
    Err(ErrorKind::InvalidRsaKey("not supported by this provider".into()).into())
}

fn ec_pub_components_from_private_key(
    pkcs8: &[u8],
    algorithm: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>), Error> {
    let (signing, curve, half) = match algorithm {
        Algorithm::ES256 => (
            &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            EllipticCurve::P256,
            32,
        ),
        Algorithm::ES384 => (
            &ring_sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            EllipticCurve::P384,
            48,
        ),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let rng = ring::rand::SystemRandom::new();
    let pair = ring_sig::EcdsaKeyPair::from_pkcs8(signing, pkcs8, &rng)
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    let point = pair.public_key().as_ref();
    match point.split_first() {
        Some((4, xy)) if xy.len() == 2 * half => {
            let (x, y) = xy.split_at(half);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn ed_pub_components_from_private_key(
    pkcs8: &[u8],
    curve: &EllipticCurve,
) -> Result<Vec<u8>, Error> {
    match curve {
        EllipticCurve::Ed25519 => Ok(ring_sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| ErrorKind::InvalidEddsaKey)?
            .public_key()
            .as_ref()
            .to_vec()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Header, Validation, decode, encode};

    use super::*;

    const RSA_KEY: &str = include_str!("../../../tests/fixtures/rsa.key.pem");
    const RSA_PUB: &str = include_str!("../../../tests/fixtures/rsa.pub.pem");
    const EC_KEY: &str = include_str!("../../../tests/fixtures/ec256.key.pem");
    const EC_PUB: &str = include_str!("../../../tests/fixtures/ec256.pub.pem");

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    fn claims() -> Claims {
        Claims {
            sub: "u".into(),
            exp: 4_000_000_000,
        }
    }

    fn round_trip(algorithm: Algorithm, sign: &EncodingKey, verify: &DecodingKey) -> bool {
        crate::init_crypto();
        let token = encode(&Header::new(algorithm), &claims(), sign).unwrap();
        decode::<Claims>(&token, verify, &Validation::new(algorithm)).is_ok()
    }

    #[test]
    fn every_family_signs_and_verifies_and_a_changed_token_fails() {
        let rsa = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
        let rsa_pub = DecodingKey::from_rsa_pem(RSA_PUB.as_bytes()).unwrap();
        for algorithm in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            assert!(round_trip(algorithm, &rsa, &rsa_pub), "{algorithm:?}");
        }
        let ec = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
        let ec_pub = DecodingKey::from_ec_pem(EC_PUB.as_bytes()).unwrap();
        assert!(round_trip(Algorithm::ES256, &ec, &ec_pub));
        let secret = EncodingKey::from_secret(b"a-secret-of-thirty-two-bytes-long!");
        let same = DecodingKey::from_secret(b"a-secret-of-thirty-two-bytes-long!");
        let other = DecodingKey::from_secret(b"another-secret-of-32-bytes-long!!");
        assert!(round_trip(Algorithm::HS256, &secret, &same));
        assert!(!round_trip(Algorithm::HS256, &secret, &other));
        // one changed signature byte
        let token = encode(&Header::new(Algorithm::RS256), &claims(), &rsa).unwrap();
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        assert!(decode::<Claims>(&changed, &rsa_pub, &Validation::new(Algorithm::RS256)).is_err());
    }

    #[test]
    fn a_key_of_another_family_never_verifies() {
        crate::init_crypto();
        // the classic confusion: the RSA public key's bytes taken as an HMAC secret
        let rsa_pub = DecodingKey::from_rsa_pem(RSA_PUB.as_bytes()).unwrap();
        let forged_with = EncodingKey::from_secret(RSA_PUB.as_bytes());
        let token = encode(&Header::new(Algorithm::HS256), &claims(), &forged_with).unwrap();
        let mut lenient = Validation::new(Algorithm::HS256);
        lenient.algorithms = vec![Algorithm::HS256, Algorithm::RS256];
        assert!(decode::<Claims>(&token, &rsa_pub, &lenient).is_err());
        assert!(new_verifier(&Algorithm::HS256, &rsa_pub).is_err());
        let secret = DecodingKey::from_secret(b"s");
        assert!(new_verifier(&Algorithm::RS256, &secret).is_err());
        assert!(new_verifier(&Algorithm::ES256, &rsa_pub).is_err());
    }
}
