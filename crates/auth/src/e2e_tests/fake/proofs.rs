//! The proofs the fake verifies: signed JWTs (client assertions, identity assertions) and DPoP
//! proofs with their replay and nonce rules.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature;
use serde_json::Value;

use super::FakeState;
use crate::jose::{sha256_b64, thumbprint};

/// Verifies a compact JWS (ES256 or RS256) with `jwk`, or with the `jwk` of its own header.
pub(super) fn verify_jws(jwt: &str, jwk: Option<&Value>) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts[..] else {
        return Err("not a compact JWS".into());
    };
    let decode = |p: &str| -> Result<Value, String> {
        serde_json::from_slice(&B64.decode(p).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    };
    let (header, claims) = (decode(h)?, decode(c)?);
    let sig = B64.decode(s).map_err(|e| e.to_string())?;
    let jwk = jwk.cloned().unwrap_or_else(|| header["jwk"].clone());
    let member = |k: &str| -> Result<Vec<u8>, String> {
        B64.decode(jwk[k].as_str().ok_or(format!("jwk without {k}"))?)
            .map_err(|e| e.to_string())
    };
    let msg = format!("{h}.{c}");
    let ok = match header["alg"].as_str() {
        Some("ES256") => {
            let mut point = vec![4u8];
            point.extend(member("x")?);
            point.extend(member("y")?);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg.as_bytes(), &sig)
                .is_ok()
        }
        Some("RS256") => signature::RsaPublicKeyComponents {
            n: member("n")?,
            e: member("e")?,
        }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg.as_bytes(), &sig)
        .is_ok(),
        other => return Err(format!("unexpected alg {other:?}")),
    };
    if !ok {
        return Err("bad signature".into());
    }
    Ok((header, claims))
}

/// Checks a DPoP proof (RFC 9449 §4.3); returns its key thumbprint and nonce.
pub(super) fn check_proof(
    st: &mut FakeState,
    proof: Option<&str>,
    method: &str,
    htu: &str,
    token: Option<&str>,
) -> Result<(String, Option<String>), String> {
    let proof = proof.ok_or("no DPoP proof")?;
    let (header, claims) = verify_jws(proof, None)?;
    if header["typ"] != "dpop+jwt" {
        return Err("typ".into());
    }
    if header["jwk"].get("d").is_some() {
        return Err("private key in the proof".into());
    }
    if claims["htm"] != method || claims["htu"] != htu {
        return Err(format!("htm/htu {} {}", claims["htm"], claims["htu"]));
    }
    let jti = claims["jti"].as_str().ok_or("no jti")?.to_owned();
    if !st.jtis.insert(jti) {
        return Err("replayed jti".into());
    }
    if let Some(t) = token
        && claims["ath"] != sha256_b64(t)
    {
        return Err("ath".into());
    }
    Ok((
        thumbprint(&header["jwk"]),
        claims["nonce"].as_str().map(str::to_owned),
    ))
}
