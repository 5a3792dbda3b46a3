//! Signing keys and compact JWS (RFC 7515) for the JWTs the hub mints: DPoP proofs (RFC 9449),
//! `private_key_jwt` client assertions (RFC 7523). Every cryptographic operation is ring's (the
//! crypto provider rustls already uses); this module only encodes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::AuthError;

/// A private key the hub signs with. `Debug` never shows key material.
pub(crate) struct SigningKey {
    alg: &'static str,
    kind: Kind,
    rng: SystemRandom,
}

enum Kind {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn invalid_key(why: &str) -> AuthError {
    AuthError::Invalid(format!("unusable private key: {why}"))
}

impl SigningKey {
    /// Generates a P-256 key (ES256). Returns it with its PKCS#8 DER encoding, for storing.
    pub(crate) fn generate_es256() -> Result<(SigningKey, Vec<u8>), AuthError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| AuthError::Invalid("cannot generate a key".into()))?;
        let der = pkcs8.as_ref().to_vec();
        let key = SigningKey::from_pkcs8(&der, Some("ES256"))?;
        Ok((key, der))
    }

    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`: EC P-256/P-384, RSA, Ed25519) or
    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`). `alg` picks the JWS algorithm where the key allows
    /// several (RSA: `RS256` by default, or `PS256`); otherwise it must match the key.
    pub(crate) fn from_pem(pem: &str, alg: Option<&str>) -> Result<SigningKey, AuthError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| invalid_key("not a PEM private key"))?;
        match der {
            PrivateKeyDer::Pkcs8(k) => SigningKey::from_pkcs8(k.secret_pkcs8_der(), alg),
            PrivateKeyDer::Pkcs1(k) => {
                let pair = RsaKeyPair::from_der(k.secret_pkcs1_der())
                    .map_err(|e| invalid_key(&format!("RSA key rejected ({e})")))?;
                SigningKey::rsa(pair, alg)
            }
            PrivateKeyDer::Sec1(_) => Err(invalid_key(
                "SEC1 (`BEGIN EC PRIVATE KEY`) keys are not read; convert it to PKCS#8 with \
                 `openssl pkcs8 -topk8 -nocrypt`",
            )),
            _ => Err(invalid_key("unknown key format")),
        }
    }

    fn from_pkcs8(der: &[u8], alg: Option<&str>) -> Result<SigningKey, AuthError> {
        let rng = SystemRandom::new();
        let ec = [
            ("ES256", &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            ("ES384", &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        ];
        for (name, ring_alg) in ec {
            if let Ok(pair) = EcdsaKeyPair::from_pkcs8(ring_alg, der, &rng) {
                return SigningKey::checked(name, alg, Kind::Ecdsa(pair));
            }
        }
        if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            return SigningKey::rsa(pair, alg);
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return SigningKey::checked("EdDSA", alg, Kind::Ed25519(pair));
        }
        Err(invalid_key(
            "PKCS#8 key of an unsupported type (EC P-256/P-384 with its public key, RSA of at \
             least 2048 bits, or Ed25519)",
        ))
    }

    fn rsa(pair: RsaKeyPair, alg: Option<&str>) -> Result<SigningKey, AuthError> {
        let (name, encoding): (&'static str, &'static dyn signature::RsaEncoding) = match alg {
            None | Some("RS256") => ("RS256", &signature::RSA_PKCS1_SHA256),
            Some("PS256") => ("PS256", &signature::RSA_PSS_SHA256),
            Some(other) => {
                return Err(invalid_key(&format!(
                    "an RSA key cannot sign {other} (RS256 or PS256)"
                )));
            }
        };
        Ok(SigningKey {
            alg: name,
            kind: Kind::Rsa(pair, encoding),
            rng: SystemRandom::new(),
        })
    }

    fn checked(
        name: &'static str,
        wanted: Option<&str>,
        kind: Kind,
    ) -> Result<SigningKey, AuthError> {
        if let Some(w) = wanted
            && w != name
        {
            return Err(invalid_key(&format!("this key signs {name}, not {w}")));
        }
        Ok(SigningKey {
            alg: name,
            kind,
            rng: SystemRandom::new(),
        })
    }

    /// The JWS `alg`.
    pub(crate) fn alg(&self) -> &'static str {
        self.alg
    }

    /// The public key as a JWK (RFC 7517), without any private member.
    pub(crate) fn public_jwk(&self) -> Value {
        match &self.kind {
            Kind::Ecdsa(pair) => {
                // Uncompressed point: 0x04 || X || Y.
                let point = pair.public_key().as_ref();
                let n = (point.len() - 1) / 2;
                let crv = if self.alg == "ES256" {
                    "P-256"
                } else {
                    "P-384"
                };
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": B64.encode(&point[1..1 + n]),
                    "y": B64.encode(&point[1 + n..]),
                })
            }
            Kind::Rsa(pair, _) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
            }
            Kind::Ed25519(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": B64.encode(pair.public_key().as_ref()),
            }),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let failed = |_| AuthError::Invalid("signing failed".into());
        match &self.kind {
            Kind::Ecdsa(pair) => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(failed),
            Kind::Rsa(pair, encoding) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &self.rng, message, &mut out)
                    .map_err(failed)?;
                Ok(out)
            }
            Kind::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    /// A compact JWS of `claims`, with `alg` and the `extra` header members (`typ`, `jwk`, …).
    pub(crate) fn jwt(
        &self,
        extra: Map<String, Value>,
        claims: &Value,
    ) -> Result<String, AuthError> {
        let mut header = Map::new();
        header.insert("alg".into(), Value::from(self.alg));
        header.extend(extra);
        let signing_input = format!(
            "{}.{}",
            B64.encode(Value::Object(header).to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self.sign(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", B64.encode(signature)))
    }
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK: its required members, in lexicographic
/// order, without whitespace.
pub(crate) fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        _ => &["crv", "kty", "x"],
    };
    // serde_json (with `preserve_order`) writes members in insertion order: insert sorted.
    let mut canonical = Map::new();
    for m in members {
        canonical.insert((*m).to_owned(), jwk[*m].clone());
    }
    B64.encode(Sha256::digest(Value::Object(canonical).to_string()))
}

/// base64url(SHA-256(value)): the DPoP `ath` of an access token.
pub(crate) fn sha256_b64(value: &str) -> String {
    B64.encode(Sha256::digest(value.as_bytes()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Verifies a compact JWS with ring against the embedded or given public key.
    pub(crate) fn verify(jwt: &str, jwk: &Value) -> (Value, Value) {
        let mut parts = jwt.split('.');
        let (h, c, s) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let header: Value = serde_json::from_slice(&B64.decode(h).unwrap()).unwrap();
        let claims: Value = serde_json::from_slice(&B64.decode(c).unwrap()).unwrap();
        let sig = B64.decode(s).unwrap();
        let msg = format!("{h}.{c}");
        let d = |k: &str| B64.decode(jwk[k].as_str().unwrap()).unwrap();
        match header["alg"].as_str().unwrap() {
            "ES256" => {
                let mut point = vec![4u8];
                point.extend(d("x"));
                point.extend(d("y"));
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg.as_bytes(), &sig)
                    .unwrap();
            }
            "RS256" | "PS256" => {
                let alg = if header["alg"] == "RS256" {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                signature::RsaPublicKeyComponents {
                    n: d("n"),
                    e: d("e"),
                }
                .verify(alg, msg.as_bytes(), &sig)
                .unwrap();
            }
            "EdDSA" => signature::UnparsedPublicKey::new(&signature::ED25519, d("x"))
                .verify(msg.as_bytes(), &sig)
                .unwrap(),
            other => panic!("unexpected alg {other}"),
        }
        (header, claims)
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn generated_es256_key_signs_verifiable_jwts_and_round_trips_through_pem() {
        let (key, der) = SigningKey::generate_es256().unwrap();
        assert_eq!(key.alg(), "ES256");
        let jwk = key.public_jwk();
        assert!(
            jwk.get("d").is_none(),
            "no private member in the public JWK"
        );
        let mut extra = Map::new();
        extra.insert("typ".into(), "dpop+jwt".into());
        extra.insert("jwk".into(), jwk.clone());
        let jwt = key.jwt(extra, &json!({"htm": "POST", "n": 1})).unwrap();
        let (header, claims) = verify(&jwt, &jwk);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["htm"], "POST");

        let again = SigningKey::from_pem(&pem("PRIVATE KEY", &der), None).unwrap();
        assert_eq!(again.public_jwk(), jwk);
        assert_eq!(thumbprint(&again.public_jwk()), thumbprint(&jwk));
        assert!(format!("{again:?}").contains("ES256"));
        // The key says what it signs.
        assert!(SigningKey::from_pem(&pem("PRIVATE KEY", &der), Some("RS256")).is_err());
    }

    #[test]
    fn ed25519_keys_sign_eddsa() {
        let rng = SystemRandom::new();
        let der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = SigningKey::from_pem(&pem("PRIVATE KEY", der.as_ref()), None).unwrap();
        assert_eq!(key.alg(), "EdDSA");
        let jwt = key.jwt(Map::new(), &json!({"a": 1})).unwrap();
        verify(&jwt, &key.public_jwk());
    }

    #[test]
    fn rsa_keys_sign_rs256_or_ps256_from_pkcs8_and_pkcs1() {
        // A throwaway key generated for these tests (`openssl genpkey -algorithm RSA`).
        let pkcs8 = include_str!("../testdata/throwaway-rsa-2048.pem");
        let pkcs1 = include_str!("../testdata/throwaway-rsa-2048-pkcs1.pem");
        for (pem, alg) in [(pkcs8, None), (pkcs1, None), (pkcs8, Some("PS256"))] {
            let key = SigningKey::from_pem(pem, alg).unwrap();
            assert_eq!(key.alg(), alg.unwrap_or("RS256"));
            let jwt = key.jwt(Map::new(), &json!({"iss": "c"})).unwrap();
            let (_, claims) = verify(&jwt, &key.public_jwk());
            assert_eq!(claims["iss"], "c");
        }
        assert!(SigningKey::from_pem(pkcs8, Some("ES256")).is_err());
    }

    #[test]
    fn unusable_keys_are_refused_without_echoing_them() {
        for bad in [
            "not a key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n",
        ] {
            let e = SigningKey::from_pem(bad, None).unwrap_err().to_string();
            assert!(e.starts_with("unusable private key"), "{e}");
            assert!(!e.contains("AAAA") && !e.contains("MHcC"), "{e}");
        }
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29",
        });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
