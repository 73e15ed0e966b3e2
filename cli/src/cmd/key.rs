//! `pedigree key generate`, `pedigree key fingerprint` and `pedigree key vkey`.

use crate::output::Output;
use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use pedigree_core::checkpoint::{LogSigner, LogVerifier};
use pedigree_core::keys::{Algorithm, PrivateKey, PublicKey};
use pedigree_core::witness::WitnessSigner;
use std::path::{Path, PathBuf};

/// Key commands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Write a new key pair: NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (SPKI PEM)
    Generate {
        /// ed25519, or p256 (ECDSA P-256, needed by OpenSSF model-signing)
        #[arg(long, default_value = "ed25519")]
        algorithm: Algorithm,
        /// Path prefix of the two files
        #[arg(long)]
        out: PathBuf,
        /// Encrypt the private key with the passphrase in $PEDIGREE_PASSPHRASE
        #[arg(long)]
        encrypt: bool,
    },
    /// Print a public or private key's fingerprint (SHA-256 of the DER SubjectPublicKeyInfo)
    Fingerprint {
        /// PEM key file
        file: PathBuf,
    },
    /// Print the C2SP note verifier key of an Ed25519 private key: a log's (checkpoint
    /// signatures, named by the log's origin) or, with --witness, a witness's
    /// (cosignatures)
    Vkey {
        /// PEM private key file
        file: PathBuf,
        /// The log's origin, or the witness's name
        #[arg(long)]
        name: String,
        /// The key cosigns as a witness (cosignature/v1) instead of signing checkpoints
        #[arg(long)]
        witness: bool,
    },
}

/// Reads a public key, or the public half of a private key, from a PEM file.
///
/// # Errors
///
/// When the file cannot be read or holds no supported key.
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("couldn't read {}", path.display()))?;
    if pem.contains("PRIVATE KEY") {
        return Ok(read_private_pem(&pem, path)?.public_key());
    }
    PublicKey::from_pem(&pem)
        .with_context(|| format!("couldn't parse public key {}", path.display()))
}

/// Reads a log verifier key (C2SP note vkey) given inline or as a file holding it;
/// every command taking `--log-key` accepts both forms.
///
/// # Errors
///
/// When the file cannot be read or the key does not parse.
pub fn read_log_key(arg: &str) -> Result<LogVerifier> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("couldn't read {arg}"))?
    } else {
        arg.to_owned()
    };
    LogVerifier::from_vkey(text.trim())
        .with_context(|| format!("couldn't parse log verifier key {arg:?}"))
}

/// Reads a private key from a PEM file.
///
/// # Errors
///
/// When the file cannot be read or holds no supported private key.
pub fn read_private_key(path: &Path) -> Result<PrivateKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("couldn't read {}", path.display()))?;
    read_private_pem(&pem, path)
}

/// Environment variable holding the passphrase of encrypted private keys (kept out of
/// argv, which other users can read).
const PASSPHRASE_ENV: &str = "PEDIGREE_PASSPHRASE";

fn passphrase(path: &Path) -> Result<String> {
    std::env::var(PASSPHRASE_ENV).map_err(|_| {
        anyhow::anyhow!(
            "{} is passphrase-protected: set {PASSPHRASE_ENV}",
            path.display()
        )
    })
}

fn read_private_pem(pem: &str, path: &Path) -> Result<PrivateKey> {
    let key = if pem.contains("ENCRYPTED PRIVATE KEY") {
        PrivateKey::from_pem_with_passphrase(pem, passphrase(path)?.as_bytes())
    } else {
        PrivateKey::from_pem(pem)
    };
    key.with_context(|| format!("couldn't read private key {}", path.display()))
}

/// Writes a new unencrypted private key (PKCS#8 PEM, mode 0600), refusing to overwrite.
///
/// # Errors
///
/// When the file exists or cannot be written.
pub fn write_private_key(path: &Path, key: &PrivateKey) -> Result<()> {
    write_new(path, key.to_pkcs8_pem().as_bytes(), 0o600)
}

#[cfg(unix)]
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("couldn't create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("couldn't write {}", path.display()))?;
    Ok(())
}

/// Runs a key command.
///
/// # Errors
///
/// On any I/O or parse failure.
pub fn run(cmd: KeyCommand, out: &Output) -> Result<()> {
    match cmd {
        KeyCommand::Generate {
            algorithm,
            out: prefix,
            encrypt,
        } => {
            let key_path = prefix.with_extension("key");
            let pub_path = prefix.with_extension("pub");
            for p in [&key_path, &pub_path] {
                if p.exists() {
                    bail!(
                        "{} already exists; refusing to overwrite a key",
                        p.display()
                    );
                }
            }
            let key = PrivateKey::generate(algorithm);
            let pem = if encrypt {
                let pass = passphrase(&key_path)?;
                if pass.is_empty() {
                    bail!("{PASSPHRASE_ENV} is empty");
                }
                key.to_encrypted_pem(pass.as_bytes())
            } else {
                key.to_pkcs8_pem()
            };
            write_new(&key_path, pem.as_bytes(), 0o600)?;
            write_new(&pub_path, key.public_key().to_pem().as_bytes(), 0o644)?;
            let fp = key.public_key().fingerprint().to_string();
            out.print(
                &serde_json::json!({"private_key": key_path, "public_key": pub_path, "algorithm": algorithm.to_string(), "fingerprint": fp}),
                || format!("wrote {} and {}\nfingerprint {fp}", key_path.display(), pub_path.display()),
            );
        }
        KeyCommand::Fingerprint { file } => {
            let key = read_public_key(&file)?;
            let fp = key.fingerprint().to_string();
            out.print(
                &serde_json::json!({"fingerprint": fp, "algorithm": key.algorithm().to_string()}),
                || fp.clone(),
            );
        }
        KeyCommand::Vkey {
            file,
            name,
            witness,
        } => {
            let key = read_private_key(&file)?;
            let Some(ed25519) = key.as_ed25519() else {
                bail!(
                    "{} is {}, note keys need ed25519",
                    file.display(),
                    key.algorithm()
                );
            };
            let vkey = if witness {
                WitnessSigner::new(&name, ed25519.clone())
                    .context("invalid witness name")?
                    .verifier()
                    .to_vkey()
            } else {
                LogSigner::new(&name, ed25519.clone())
                    .context("invalid origin")?
                    .verifier_key()
            };
            out.print(&serde_json::json!({"verifier_key": vkey}), || vkey.clone());
        }
    }
    Ok(())
}
