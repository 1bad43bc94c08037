//! The one JWT verification code path of JWThenticator.
//!
//! The algorithm is pinned by the key (never chosen by the token), `exp` is required and must be
//! an integer, `nbf`, `iat`, `aud` and `iss` are checked, `crit` is rejected, and every failure
//! says why in a [`VerifyError`], without quoting the token.
//!
//! The verdict does not depend on the type the caller reads the claims as: every registered
//! header parameter and claim must have the type its RFC gives it (`null` is not "absent"), and
//! the header and the claims must be JSON objects of Unicode strings nested at most 128 deep,
//! down to members no type reads.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::signature::{self as aws, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};

use crate::claims::{Audience, Claims};
use crate::json_error::describe_json_error;
use crate::jwks::{Jwk, Jwks};
use crate::time::now_unix;
use crate::token_cache::TokenCache;

/// Clock skew tolerated on `exp`, `nbf` and `iat` unless configured otherwise, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// Longest token accepted, in bytes. An RS256 JWThenticator token is about 600 bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyErrorKind {
    /// Not three base64url segments of JSON, longer than [`MAX_TOKEN_LEN`], or a header that is
    /// not a valid JOSE header (a registered parameter of the wrong type or `null`, `b64`
    /// without `crit`, a lone surrogate escape, nesting deeper than 128).
    Malformed,
    /// The header names an algorithm that is not accepted (`none`, `HS256`, unknown names).
    UnsupportedAlgorithm,
    /// The header's algorithm differs from the one the key is pinned to.
    AlgorithmMismatch,
    /// The header has no `kid` and the key set holds more than one key.
    MissingKeyId,
    /// No key in the set has the header's `kid`.
    UnknownKeyId,
    /// The header carries `crit`: this verifier implements no extension, RFC 7797's `b64`
    /// included.
    CriticalHeader,
    /// The signature does not verify with the key.
    InvalidSignature,
    /// A claim is missing or has the wrong type (for example a string or `null` `exp`), or the
    /// claims are not a JSON object of Unicode strings nested at most 128 deep.
    InvalidClaims,
    /// `exp` has passed.
    Expired,
    /// `nbf` or `iat` is in the future.
    NotYetValid,
    /// `exp` lies further in the future than the configured maximum lifetime.
    LifetimeTooLong,
    /// `aud` does not name an accepted audience, or is present when none is configured.
    InvalidAudience,
    /// `iss` is not the configured issuer.
    InvalidIssuer,
}

impl VerifyErrorKind {
    /// A short stable name, suitable for metrics labels and log fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::MissingKeyId => "missing_kid",
            Self::UnknownKeyId => "unknown_kid",
            Self::CriticalHeader => "crit_header",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidClaims => "invalid_claims",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::InvalidAudience => "invalid_audience",
            Self::InvalidIssuer => "invalid_issuer",
        }
    }
}

/// A token failed verification. [`VerifyError::kind`] says why; `Display` explains it without
/// ever repeating the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    kind: VerifyErrorKind,
    detail: String,
}

impl VerifyError {
    fn new(kind: VerifyErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// Why the token was rejected.
    pub fn kind(&self) -> VerifyErrorKind {
        self.kind
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for VerifyError {}

/// A key could not be turned into a [`VerifyingKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key type or algorithm is not one this verifier accepts.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// A member the key type needs is missing or not valid base64url.
    #[error("invalid key: {0}")]
    Invalid(String),
}

/// A public key pinned to one algorithm, identified by its `kid`.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    /// Parsed once for `algorithm`: `jsonwebtoken::crypto::verify` rebuilds the aws-lc-rs key
    /// from the JWK components on every call, a quarter of the cost of an RS256 check.
    key: ParsedPublicKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// A key from a JWK. The algorithm is the JWK's `alg`, or else `default_alg`, or else
    /// derived from the curve for `EC`/`OKP` keys. Symmetric (`oct`) keys are refused: a
    /// public JWKS never holds one, and accepting one is the HS/RS confusion attack.
    pub fn from_jwk(jwk: &Jwk, default_alg: Option<Algorithm>) -> Result<Self, KeyError> {
        if let Some(use_) = jwk.use_.as_deref()
            && use_ != "sig"
        {
            return Err(KeyError::Unsupported(format!("key use `{use_}`")));
        }
        let alg = match jwk.alg.as_deref() {
            Some(name) => Some(
                parse_algorithm(name)
                    .ok_or_else(|| KeyError::Unsupported(format!("algorithm `{name}`")))?,
            ),
            None => default_alg,
        };
        fn member<'a>(
            jwk: &Jwk,
            value: &'a Option<String>,
            name: &str,
        ) -> Result<&'a str, KeyError> {
            value
                .as_deref()
                .ok_or_else(|| KeyError::Invalid(format!("{} key without `{name}`", jwk.kty)))
        }
        let (algorithm, decoding) = match jwk.kty.as_str() {
            "RSA" => {
                let algorithm = alg.unwrap_or(Algorithm::RS256);
                let key = DecodingKey::from_rsa_components(
                    member(jwk, &jwk.n, "n")?,
                    member(jwk, &jwk.e, "e")?,
                )
                .map_err(|e| KeyError::Invalid(e.to_string()))?;
                (algorithm, key)
            }
            "EC" => {
                let curve_alg = match jwk.crv.as_deref() {
                    Some("P-256") => Algorithm::ES256,
                    Some("P-384") => Algorithm::ES384,
                    other => return Err(KeyError::Unsupported(format!("EC curve {other:?}"))),
                };
                let key = DecodingKey::from_ec_components(
                    member(jwk, &jwk.x, "x")?,
                    member(jwk, &jwk.y, "y")?,
                )
                .map_err(|e| KeyError::Invalid(e.to_string()))?;
                (alg.unwrap_or(curve_alg), key)
            }
            "OKP" => {
                if jwk.crv.as_deref() != Some("Ed25519") {
                    return Err(KeyError::Unsupported(format!("OKP curve {:?}", jwk.crv)));
                }
                let key = DecodingKey::from_ed_components(member(jwk, &jwk.x, "x")?)
                    .map_err(|e| KeyError::Invalid(e.to_string()))?;
                (alg.unwrap_or(Algorithm::EdDSA), key)
            }
            other => return Err(KeyError::Unsupported(format!("key type `{other}`"))),
        };
        if decoding.family() != algorithm.family() {
            return Err(KeyError::Unsupported(format!(
                "{algorithm:?} with a {} key",
                jwk.kty
            )));
        }
        Ok(Self {
            kid: jwk.kid.clone(),
            algorithm,
            key: parse_key(jwk, algorithm)?,
        })
    }

    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The aws-lc-rs key of a JWK whose members `from_jwk` has checked, for `algorithm`: the same
/// verification algorithms jsonwebtoken's aws-lc-rs backend uses (RSA keys of 2048 to 8192 bits,
/// fixed-length ECDSA signatures).
fn parse_key(jwk: &Jwk, algorithm: Algorithm) -> Result<ParsedPublicKey, KeyError> {
    let decode = |member: &Option<String>| {
        URL_SAFE_NO_PAD
            .decode(member.as_deref().unwrap_or_default())
            .map_err(|_| KeyError::Invalid(format!("{} key member is not base64url", jwk.kty)))
    };
    let rejected = |e: aws_lc_rs::error::KeyRejected| {
        KeyError::Invalid(format!("{} key for {algorithm:?}: {e}", jwk.kty))
    };
    let rsa = |parameters: &'static aws::RsaParameters| {
        RsaPublicKeyComponents {
            n: decode(&jwk.n)?,
            e: decode(&jwk.e)?,
        }
        .to_parsed_public_key(parameters)
        .map_err(rejected)
    };
    let point = |algorithm: &'static dyn aws::VerificationAlgorithm| {
        let mut point = vec![0x04];
        point.extend(decode(&jwk.x)?);
        point.extend(decode(&jwk.y)?);
        ParsedPublicKey::new(algorithm, point).map_err(rejected)
    };
    match algorithm {
        Algorithm::RS256 => rsa(&aws::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => rsa(&aws::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => rsa(&aws::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => rsa(&aws::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => rsa(&aws::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => rsa(&aws::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => point(&aws::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => point(&aws::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => ParsedPublicKey::new(&aws::ED25519, decode(&jwk.x)?).map_err(rejected),
        other => Err(KeyError::Unsupported(format!("algorithm {other:?}"))),
    }
}

/// Parses an algorithm name, refusing `none` and the symmetric `HS*` family.
fn parse_algorithm(name: &str) -> Option<Algorithm> {
    let alg: Algorithm = name.parse().ok()?;
    (alg.family() != jsonwebtoken::AlgorithmFamily::Hmac).then_some(alg)
}

/// Configures a [`Verifier`].
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifierBuilder {
    algorithms: Vec<Algorithm>,
    audiences: Vec<String>,
    issuer: Option<String>,
    leeway: u64,
    max_lifetime: Option<u64>,
    required_claims: Vec<String>,
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        Self {
            algorithms: Vec::new(),
            audiences: Vec::new(),
            issuer: None,
            leeway: DEFAULT_LEEWAY_SECS,
            max_lifetime: None,
            required_claims: Vec::new(),
        }
    }
}

impl VerifierBuilder {
    /// Accept only these algorithms. By default every asymmetric algorithm is accepted, each
    /// key still verifying only its own.
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Require `aud` to name at least one of these. With none configured, a token that
    /// carries `aud` is rejected (RFC 7519 section 4.1.3).
    pub fn with_audiences<S: Into<String>>(
        mut self,
        audiences: impl IntoIterator<Item = S>,
    ) -> Self {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Require `iss` to equal this issuer.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds ([`DEFAULT_LEEWAY_SECS`]).
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Reject tokens whose `exp` lies more than this many seconds (plus leeway) in the future.
    pub fn with_max_lifetime(mut self, seconds: u64) -> Self {
        self.max_lifetime = Some(seconds);
        self
    }

    /// Require these claims to be present, and not `null`, in every token.
    pub fn with_required_claims<S: Into<String>>(
        mut self,
        claims: impl IntoIterator<Item = S>,
    ) -> Self {
        self.required_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// A verifier for the signature keys of a JWKS. Keys it cannot use (encryption keys,
    /// symmetric keys, algorithms not accepted) are skipped, as a JWKS may hold keys for
    /// other purposes.
    pub fn build(self, jwks: &Jwks) -> Result<Verifier, KeyError> {
        let default_alg = match self.algorithms.as_slice() {
            [only] => Some(*only),
            _ => None,
        };
        let keys = jwks
            .keys
            .iter()
            .filter_map(|jwk| VerifyingKey::from_jwk(jwk, default_alg).ok())
            .collect();
        Ok(self.build_with_keys(keys))
    }

    /// A verifier for the given keys; keys whose algorithm is not accepted are left out.
    pub fn build_with_keys(self, keys: Vec<VerifyingKey>) -> Verifier {
        let mut by_kid = HashMap::with_capacity(keys.len());
        let mut keys_without_kid = Vec::new();
        for key in keys {
            if !self.algorithms.is_empty() && !self.algorithms.contains(&key.algorithm) {
                continue;
            }
            match key.kid.clone() {
                Some(kid) => {
                    by_kid.insert(kid, key);
                }
                None => keys_without_kid.push(key),
            }
        }
        // Each name once: `RequiredClaims` records a claim's presence in the flag of its first.
        let mut required_claims = Vec::with_capacity(self.required_claims.len());
        for name in self.required_claims {
            if !required_claims.contains(&name) {
                required_claims.push(name);
            }
        }
        Verifier {
            by_kid,
            keys_without_kid,
            audiences: self.audiences,
            issuer: self.issuer,
            leeway: i64::try_from(self.leeway).unwrap_or(i64::MAX),
            max_lifetime: self
                .max_lifetime
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
            required_claims,
        }
    }
}

/// Verifies JWTs against a set of public keys. Cheap to share behind an `Arc`; `verify` takes
/// `&self` and does no I/O.
#[derive(Debug, Clone)]
pub struct Verifier {
    by_kid: HashMap<String, VerifyingKey>,
    keys_without_kid: Vec<VerifyingKey>,
    audiences: Vec<String>,
    issuer: Option<String>,
    leeway: i64,
    max_lifetime: Option<i64>,
    required_claims: Vec<String>,
}

/// The registered JOSE header parameters (RFC 7515 section 4.1, RFC 7797 section 3), each with
/// the type its RFC gives it: one of another type, `null` included, makes the header malformed
/// rather than counting as absent. Other members are ignored, as RFC 7515 says.
#[derive(Deserialize)]
#[expect(dead_code, reason = "most members are read only to check their types")]
struct Header {
    alg: String,
    #[serde(default, deserialize_with = "present")]
    kid: Option<String>,
    /// Refused whatever it lists: this verifier implements no extension.
    #[serde(default, deserialize_with = "present")]
    crit: Option<Vec<JsonString>>,
    /// RFC 7797's unencoded payload, which a header may only carry with `b64` in `crit`.
    #[serde(default, deserialize_with = "present")]
    b64: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    typ: Option<JsonString>,
    #[serde(default, deserialize_with = "present")]
    cty: Option<JsonString>,
    #[serde(default, deserialize_with = "present")]
    jku: Option<JsonString>,
    #[serde(default, deserialize_with = "present")]
    jwk: Option<JsonObject>,
    #[serde(default, deserialize_with = "present")]
    x5u: Option<JsonString>,
    #[serde(default, deserialize_with = "present")]
    x5c: Option<Vec<JsonString>>,
    #[serde(default, deserialize_with = "present")]
    x5t: Option<JsonString>,
    #[serde(default, deserialize_with = "present", rename = "x5t#S256")]
    x5t_s256: Option<JsonString>,
}

/// The registered claims (RFC 7519 section 4.1), typed as there (`exp`, `nbf` and `iat` as
/// integers): a claim of another type, `null` included, makes the claims invalid rather than
/// counting as absent, whatever type the caller reads the claims as.
#[derive(Deserialize)]
#[expect(
    dead_code,
    reason = "`sub` and `jti` are read only to check their types"
)]
struct RegisteredClaims {
    #[serde(default, deserialize_with = "present")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<Audience>,
    #[serde(default, deserialize_with = "present")]
    iss: Option<String>,
    #[serde(default, deserialize_with = "present")]
    sub: Option<JsonString>,
    #[serde(default, deserialize_with = "present")]
    jti: Option<JsonString>,
}

/// Reads a member that may be absent (`#[serde(default)]`) but, when present, must have its
/// type: serde's `Option` would read `null` as absent.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A JSON string, checked and dropped.
struct JsonString;

impl<'de> Deserialize<'de> for JsonString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_str(JsonVisitor("a string"))
            .map(|()| Self)
    }
}

/// A JSON object, checked to its depth and dropped.
struct JsonObject;

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(JsonVisitor("a JSON object"))
            .map(|()| Self)
    }
}

/// Any JSON value, checked to its depth and dropped. Unlike [`IgnoredAny`], which serde_json
/// skips without looking, every string is decoded (so a lone surrogate escape is refused) and
/// every level counts against serde_json's nesting limit of 128.
struct JsonValue;

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(JsonVisitor("any JSON value"))
            .map(|()| Self)
    }
}

/// Accepts what its deserializer was asked for; the name says what that was.
struct JsonVisitor(&'static str);

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<JsonValue>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<JsonString, JsonValue>()?.is_some() {}
        Ok(())
    }
}

/// Reads a claims set for which of these claims it holds with a value other than `null`, a
/// flag per name, without building the values (nor, unless escaped, the names).
struct RequiredClaims<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for RequiredClaims<'_> {
    type Value = Vec<bool>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<bool>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequiredClaims<'_> {
    type Value = Vec<bool>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<bool>, A::Error> {
        let mut present = vec![false; self.0.len()];
        while let Some(index) = map.next_key_seed(ClaimName(self.0))? {
            let value: Option<IgnoredAny> = map.next_value()?;
            if let Some(index) = index {
                // The last of duplicate members counts, as in a `serde_json::Map`.
                present[index] = value.is_some();
            }
        }
        Ok(present)
    }
}

/// A member name of a claims set, read as its position among the required claims.
struct ClaimName<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for ClaimName<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ClaimName<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a claim name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|required| required == name))
    }
}

fn malformed(detail: impl Into<String>) -> VerifyError {
    VerifyError::new(VerifyErrorKind::Malformed, detail)
}

fn decode_segment(segment: &str, name: &str) -> Result<Vec<u8>, VerifyError> {
    // The engine refuses padding and non-zero trailing bits, so only canonical base64url passes.
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| malformed(format!("the {name} is not canonical base64url")))
}

/// Parses a JOSE header or a claims set, which must be a UTF-8 JSON object (RFC 7515 section 4,
/// RFC 7519 section 7.2) of Unicode strings (RFC 8259 section 8.2: no lone surrogate escape)
/// nested at most 128 deep, whatever `T` reads of it. Serde's derived structs would also read a
/// JSON array field by field, `from_slice` skips the strings of ignored members without checking
/// their UTF-8, and neither looks into ignored members at all. The error says what is wrong
/// without quoting the JSON.
fn from_json_object<T: DeserializeOwned>(json: &[u8]) -> Result<T, String> {
    let json = std::str::from_utf8(json).map_err(|_| "not UTF-8".to_owned())?;
    serde_json::from_str::<JsonObject>(json)
        .and_then(|JsonObject| serde_json::from_str(json))
        .map_err(|e| describe_json_error(&e))
}

impl Verifier {
    /// Starts configuring a verifier.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// How many keys the verifier holds.
    pub fn key_count(&self) -> usize {
        self.by_kid.len() + self.keys_without_kid.len()
    }

    /// Whether a key with this `kid` is in the set.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// The clock skew, in seconds, tolerated on `exp`, `nbf` and `iat`: a token is expired from
    /// `exp + leeway` on. Caches of verified tokens use it to expire entries as this verifier
    /// would.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    /// Verifies a JWThenticator token now and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_at(token, now_unix())
    }

    /// Verifies a token now and deserialises its payload as `C`, for tokens of other issuers.
    pub fn verify_as<C: DeserializeOwned>(&self, token: &str) -> Result<C, VerifyError> {
        self.verify_as_at(token, now_unix())
    }

    /// [`Verifier::verify`] at a given time (seconds since the Unix epoch), for tests.
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        self.verify_as_at(token, now)
    }

    /// [`Verifier::verify_as`] at a given time (seconds since the Unix epoch).
    pub fn verify_as_at<C: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
    ) -> Result<C, VerifyError> {
        self.verify_as_with_exp_at(token, now)
            .map(|(claims, _)| claims)
    }

    /// [`Verifier::verify_as_at`], also returning the token's `exp`, which a
    /// [`TokenCache`](crate::TokenCache) entry needs whatever `C` is.
    pub fn verify_as_with_exp_at<C: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(C, i64), VerifyError> {
        let payload = self.verify_signature(token)?;
        let exp = self.check_claims(&payload, now)?;
        let claims = serde_json::from_slice(&payload).map_err(|e| {
            VerifyError::new(
                VerifyErrorKind::InvalidClaims,
                format!("invalid claims: {}", describe_json_error(&e)),
            )
        })?;
        Ok((claims, exp))
    }

    /// [`Verifier::verify_as_at`] through a cache of tokens that passed: the one
    /// cache-then-verify protocol of the server's `/validate` and the tower layer.
    ///
    /// A token that `cache` holds under key set `epoch`, and that has not expired at `now` with
    /// this verifier's leeway, is answered from it; any other is verified in full as `T`, and
    /// only a success is remembered, as `keep(claims)` (what a hit returns), until its `exp`.
    /// Failures are never remembered, so with any cache, or none, every token gets the verdict
    /// a full verification gives it. See [`TokenCache`] for why a hit can be trusted.
    ///
    /// # Errors
    ///
    /// As for [`Verifier::verify_as_at`], for a token the cache does not hold.
    ///
    /// # Example
    ///
    /// ```
    /// use jwthenticator_core::{Claims, Jwks, TokenCache, Verifier, VerifyErrorKind};
    ///
    /// let verifier = Verifier::builder().build(&Jwks { keys: vec![] })?;
    /// let valid = TokenCache::<()>::new(10_000);
    /// let verdict = verifier.verify_cached_at("not.a.token", 1_700_000_000, Some(&valid), 0, |_: Claims| ());
    /// assert_eq!(verdict.unwrap_err().kind(), VerifyErrorKind::Malformed);
    /// assert!(valid.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify_cached_at<T: DeserializeOwned, C: Clone>(
        &self,
        token: &str,
        now: i64,
        cache: Option<&TokenCache<C>>,
        epoch: u64,
        keep: impl FnOnce(T) -> C,
    ) -> Result<C, VerifyError> {
        let Some(cache) = cache else {
            return self.verify_as_at(token, now).map(keep);
        };
        let hash = TokenCache::<C>::hash(token);
        if let Some(kept) = cache.get(&hash, epoch, now, self.leeway) {
            return Ok(kept);
        }
        let (claims, exp) = self.verify_as_with_exp_at::<T>(token, now)?;
        let kept = keep(claims);
        cache.insert(hash, kept.clone(), exp, epoch);
        Ok(kept)
    }

    /// The `kid` of a token's header, without verifying anything. Used by caches to decide
    /// whether a key set needs refreshing.
    pub fn peek_kid(token: &str) -> Option<String> {
        let header = token.split('.').next()?;
        let bytes = decode_segment(header, "header").ok()?;
        from_json_object::<Header>(&bytes).ok()?.kid
    }

    /// Checks the header and the signature; returns the decoded payload.
    fn verify_signature(&self, token: &str) -> Result<Vec<u8>, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed(format!(
                "the token is longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(malformed("a JWT has exactly three dot-separated segments"));
        };

        let header: Header = from_json_object(&decode_segment(header_b64, "header")?)
            .map_err(|e| malformed(format!("the header is not a valid JOSE header: {e}")))?;
        if header.crit.is_some() {
            return Err(VerifyError::new(
                VerifyErrorKind::CriticalHeader,
                "the `crit` header parameter is not supported",
            ));
        }
        if header.b64.is_some() {
            return Err(malformed(
                "the `b64` header parameter must be listed in `crit` (RFC 7797)",
            ));
        }
        let alg = parse_algorithm(&header.alg).ok_or_else(|| {
            VerifyError::new(
                VerifyErrorKind::UnsupportedAlgorithm,
                format!("algorithm `{}` is not accepted", header.alg.escape_debug()),
            )
        })?;
        let key = self.key_for(header.kid.as_deref())?;
        if alg != key.algorithm {
            return Err(VerifyError::new(
                VerifyErrorKind::AlgorithmMismatch,
                format!(
                    "the token says {alg:?} but the key is for {:?}",
                    key.algorithm
                ),
            ));
        }

        let signature = decode_segment(signature_b64, "signature")?;
        let message_len = header_b64.len() + 1 + payload_b64.len();
        let valid = key
            .key
            .verify_sig(&token.as_bytes()[..message_len], &signature)
            .is_ok();
        if !valid {
            return Err(VerifyError::new(
                VerifyErrorKind::InvalidSignature,
                "the signature does not verify",
            ));
        }
        decode_segment(payload_b64, "payload")
    }

    fn key_for(&self, kid: Option<&str>) -> Result<&VerifyingKey, VerifyError> {
        match kid {
            Some(kid) => self.by_kid.get(kid).ok_or_else(|| {
                VerifyError::new(
                    VerifyErrorKind::UnknownKeyId,
                    "no key with the token's `kid`",
                )
            }),
            None => match (self.keys_without_kid.as_slice(), self.by_kid.len()) {
                ([only], 0) => Ok(only),
                ([], 1) => Ok(self.by_kid.values().next().ok_or_else(|| {
                    VerifyError::new(VerifyErrorKind::MissingKeyId, "the token has no `kid`")
                })?),
                _ => Err(VerifyError::new(
                    VerifyErrorKind::MissingKeyId,
                    "the token has no `kid` and the key set holds several keys",
                )),
            },
        }
    }

    /// Checks the claims the verifier is configured for; returns `exp`.
    fn check_claims(&self, payload: &[u8], now: i64) -> Result<i64, VerifyError> {
        let invalid = |detail: String| VerifyError::new(VerifyErrorKind::InvalidClaims, detail);
        let claims: RegisteredClaims =
            from_json_object(payload).map_err(|e| invalid(format!("invalid claims: {e}")))?;
        let exp = claims
            .exp
            .ok_or_else(|| invalid("the `exp` claim is required".to_owned()))?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(VerifyError::new(
                VerifyErrorKind::Expired,
                "the token has expired",
            ));
        }
        if let Some(max) = self.max_lifetime
            && exp > now.saturating_add(max).saturating_add(self.leeway)
        {
            return Err(VerifyError::new(
                VerifyErrorKind::LifetimeTooLong,
                "the token's `exp` is further away than the maximum lifetime",
            ));
        }
        for (name, value) in [("nbf", claims.nbf), ("iat", claims.iat)] {
            if value.is_some_and(|t| t > now.saturating_add(self.leeway)) {
                return Err(VerifyError::new(
                    VerifyErrorKind::NotYetValid,
                    format!("the token's `{name}` is in the future"),
                ));
            }
        }
        match (&claims.aud, self.audiences.is_empty()) {
            (Some(aud), false) if !self.audiences.iter().any(|a| aud.contains(a)) => {
                return Err(VerifyError::new(
                    VerifyErrorKind::InvalidAudience,
                    "the token's `aud` names no accepted audience",
                ));
            }
            (None, false) => {
                return Err(VerifyError::new(
                    VerifyErrorKind::InvalidAudience,
                    "the token has no `aud` claim",
                ));
            }
            (Some(_), true) => {
                return Err(VerifyError::new(
                    VerifyErrorKind::InvalidAudience,
                    "the token has an `aud` claim but no audience is accepted",
                ));
            }
            _ => {}
        }
        if let Some(issuer) = &self.issuer
            && claims.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(VerifyError::new(
                VerifyErrorKind::InvalidIssuer,
                "the token's `iss` is not the accepted issuer",
            ));
        }
        if !self.required_claims.is_empty() {
            let present = RequiredClaims(&self.required_claims)
                .deserialize(&mut serde_json::Deserializer::from_slice(payload))
                .map_err(|e| invalid(format!("invalid claims: {}", describe_json_error(&e))))?;
            let mut missing = self.required_claims.iter().zip(present).filter(|(_, p)| !p);
            if let Some((name, _)) = missing.next() {
                return Err(invalid(format!(
                    "the token lacks the required `{name}` claim"
                )));
            }
        }
        Ok(exp)
    }
}

#[cfg(test)]
#[path = "verifier_tests.rs"]
mod tests;
