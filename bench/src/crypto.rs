//! `crypto`: the machine's raw RS256 rates on aws-lc-rs, and a shared RSA test key.
//!
//! The raw rates are the physical limit of the token endpoints (one signature each) and a
//! reference for verification: a key parsed once, then every thread signing or verifying a
//! JWT-sized message in a loop. The rate of `jsonwebtoken::crypto::sign`, which parses the
//! private key again on every call, is printed beside them.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;

/// The signing input of a typical JWThenticator RS256 token (header and claims, base64url).
pub(crate) const SIGNING_INPUT: &[u8] = b"eyJhbGciOiJSUzI1NiIsImtpZCI6IktlVnRyRzdSYkxVdWpZVkh3OHFTZmdSVEtBbyIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl9pZCI6IjZmMWM2YjNlLTJmNTUtNGJiNC05YjQzLTRkMWYzZjFiMmMzZCIsImlkZW50aWZpZXIiOiIwYTllMGI1NC04YzFjLTRjNDktOGJiNi0wYTVlMGNmMGYzYTEiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDA5MDAwMH0";

/// An RSA-2048 key with what the benchmark needs of it.
pub(crate) struct RsaKey {
    /// The parsed key, ready to sign.
    pub(crate) pair: KeyPair,
    /// The PKCS#1 DER of the private key, as `jsonwebtoken::EncodingKey::from_rsa_der` takes it.
    pub(crate) pkcs1: Vec<u8>,
}

impl RsaKey {
    /// A new RSA-2048 key.
    pub(crate) fn generate() -> anyhow::Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048).context("generating an RSA key")?;
        let pkcs8 = pair.as_der().context("encoding the RSA key")?;
        let private = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8.as_ref())?;
        Ok(Self {
            pkcs1: private.to_pkcs1_der()?.as_bytes().to_vec(),
            pair,
        })
    }

    /// The RS256 signature of `message`, base64url.
    pub(crate) fn sign_b64(&self, message: &[u8]) -> anyhow::Result<String> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
        Ok(URL_SAFE_NO_PAD.encode(signature))
    }
}

/// How many times per second `threads` threads together complete `op`, over `duration`.
fn rate(threads: usize, duration: Duration, op: impl Fn() + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    op();
                    count += 1;
                }
                done.fetch_add(count, Ordering::Relaxed);
            });
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    // Counted to the end of each thread's last operation, so the elapsed time includes it.
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Which rates `crypto` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Which {
    /// `sign`, `verify` and `sign_reparsing`.
    All,
    /// `sign` and `verify`.
    Raw,
}

/// Prints the `sign` and `verify` rates, and with [`Which::All`] the `sign_reparsing` rate, one
/// `name<TAB>ops/s` line each, after the `threads` line.
pub(crate) fn run(threads: Option<usize>, seconds: f64, which: Which) -> anyhow::Result<()> {
    let threads = match threads {
        Some(threads) => threads,
        None => std::thread::available_parallelism()?.get(),
    };
    let duration = Duration::from_secs_f64(seconds);
    let key = RsaKey::generate()?;
    let rng = SystemRandom::new();
    let modulus_len = key.pair.public_modulus_len();
    let signature = key.sign_b64(SIGNING_INPUT)?;
    let signature = URL_SAFE_NO_PAD.decode(signature)?;
    let public = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.pair.public_key())
        .map_err(|e| anyhow::anyhow!("parsing the public key: {e}"))?;
    let encoding_key = EncodingKey::from_rsa_der(&key.pkcs1);
    public
        .verify_sig(SIGNING_INPUT, &signature)
        .map_err(|_| anyhow::anyhow!("the signature does not verify"))?;

    let sign = rate(threads, duration, || {
        let mut out = vec![0; modulus_len];
        let signed = key
            .pair
            .sign(&RSA_PKCS1_SHA256, &rng, SIGNING_INPUT, &mut out);
        assert!(signed.is_ok(), "RSA signing failed");
    });
    let verify = rate(threads, duration, || {
        assert!(public.verify_sig(SIGNING_INPUT, &signature).is_ok());
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "threads\t{threads}")?;
    writeln!(out, "sign\t{sign:.0}")?;
    writeln!(out, "verify\t{verify:.0}")?;
    if which == Which::Raw {
        return Ok(());
    }
    let sign_reparsing = rate(threads, duration, || {
        let signed = jsonwebtoken::crypto::sign(SIGNING_INPUT, &encoding_key, Algorithm::RS256);
        assert!(signed.is_ok(), "RSA signing failed");
    });
    writeln!(out, "sign_reparsing\t{sign_reparsing:.0}")?;
    Ok(())
}
