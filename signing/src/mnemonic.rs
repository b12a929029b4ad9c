//! `mnemonic new` and `mnemonic check`.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::secrets::MnemonicInput;

/// Extra entropy is typically a few hundred dice rolls; this bounds a runaway pipe.
const MAX_EXTRA_ENTROPY_BYTES: u64 = 1024 * 1024;

/// Domain separation for the mixing hash, so these bytes mean nothing elsewhere.
const MIX_CONTEXT: &str = "archipelago archy-sign mnemonic entropy mixing v1";

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum WordCount {
    #[value(name = "24")]
    TwentyFour,
    #[value(name = "12")]
    Twelve,
}

impl WordCount {
    /// BIP39: 256 bits of entropy for 24 words, 128 bits for 12.
    fn entropy_bytes(self) -> usize {
        match self {
            WordCount::TwentyFour => 32,
            WordCount::Twelve => 16,
        }
    }
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// Number of words.
    #[arg(long, value_enum, default_value = "24")]
    words: WordCount,
    /// Also mix in entropy read from stdin (e.g. dice rolls), in addition to OS randomness.
    #[arg(long)]
    extra_entropy_stdin: bool,
    /// Write the mnemonic to this file, created with mode 0600 (owner only), instead of
    /// printing it. Refuses to replace an existing file unless --force.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// With --out: replace an existing file (atomically; the new file is 0600 too).
    #[arg(long, requires = "out")]
    force: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    mnemonic: MnemonicInput,
}

pub fn new(args: &NewArgs) -> Result<()> {
    let entropy = entropy(args.extra_entropy_stdin)?;
    let mnemonic = bip39::Mnemonic::from_entropy_in(
        bip39::Language::English,
        &entropy[..args.words.entropy_bytes()],
    )
    .context("encoding the entropy as a mnemonic")?;
    // Build the phrase in a buffer that is big enough up front (English words are at
    // most 8 letters) so no copy of it is left behind by reallocation.
    let mut phrase = Zeroizing::new(String::with_capacity(24 * 9));
    for word in mnemonic.words() {
        if !phrase.is_empty() {
            phrase.push(' ');
        }
        phrase.push_str(word);
    }
    let words = mnemonic.word_count();
    match &args.out {
        Some(out) => {
            let mut text = Zeroizing::new(String::with_capacity(phrase.len() + 1));
            text.push_str(&phrase);
            text.push('\n');
            write_private(out, text.as_bytes(), args.force)?;
            eprintln!(
                "Wrote a new {words}-word mnemonic to {} (mode 0600). Copy the words onto paper, \
                 in order, on this machine. Anyone who has them holds your keys.",
                out.display()
            );
        }
        None => {
            println!("{}", phrase.as_str());
            eprintln!(
                "Write these {words} words down on paper, in order. Anyone who has them holds your keys."
            );
            if !io::stdout().is_terminal() {
                eprintln!(
                    "warning: the mnemonic went to standard output; a file it is redirected to \
                     is created with your umask (often readable by everyone). Use --out FILE \
                     to write it with mode 0600."
                );
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to a new file at `path` created with mode 0600, so the secret is never
/// readable by anyone else, not even for a moment. An existing file is refused unless
/// `force`; then the new one is written beside it and renamed over it (atomic).
pub fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let create = |at: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(at)
    };
    if !force {
        let mut file = create(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} already exists: not replacing it (a mnemonic there would be lost); \
                     choose another file, or pass --force",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("creating {}", path.display()))
            }
        })?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| -> Result<()> {
        let mut file = create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// 32 bytes from the OS, optionally mixed with bytes from stdin.
///
/// Mixing is BLAKE3 keyed by the OS bytes over (context, extra): if the OS generator is
/// sound the result is uniformly random whatever the extra bytes are (so hostile or
/// poor dice cannot weaken it), and if the OS generator were broken the dice still
/// decide the result.
fn entropy(extra_from_stdin: bool) -> Result<Zeroizing<[u8; 32]>> {
    let mut os = Zeroizing::new([0u8; 32]);
    OsRng
        .try_fill_bytes(os.as_mut())
        .context("reading randomness from the operating system")?;
    if !extra_from_stdin {
        return Ok(os);
    }
    let extra = read_extra_entropy()?;
    let mut hasher = blake3::Hasher::new_keyed(&os);
    hasher.update(MIX_CONTEXT.as_bytes());
    hasher.update(&extra);
    let mixed = Zeroizing::new(*hasher.finalize().as_bytes());
    eprintln!(
        "mixed {} bytes of extra entropy into OS randomness",
        extra.len()
    );
    Ok(mixed)
}

fn read_extra_entropy() -> Result<Zeroizing<Vec<u8>>> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        eprintln!("Type your extra entropy (e.g. dice rolls), then Enter and Ctrl-D:");
    }
    // Room for a few thousand dice rolls without reallocating (and leaving copies behind).
    let mut extra = Zeroizing::new(Vec::with_capacity(64 * 1024));
    stdin
        .take(MAX_EXTRA_ENTROPY_BYTES + 1)
        .read_to_end(&mut extra)
        .context("reading extra entropy from stdin")?;
    if extra.len() as u64 > MAX_EXTRA_ENTROPY_BYTES {
        bail!("extra entropy on stdin: more than {MAX_EXTRA_ENTROPY_BYTES} bytes");
    }
    if extra.iter().all(u8::is_ascii_whitespace) {
        bail!("--extra-entropy-stdin was given but stdin held no entropy");
    }
    Ok(extra)
}

pub fn check(args: &CheckArgs) -> Result<()> {
    let mnemonic = args.mnemonic.read()?;
    println!(
        "valid BIP39 mnemonic: {} words, checksum correct ({})",
        mnemonic.word_count(),
        mnemonic.source
    );
    Ok(())
}
