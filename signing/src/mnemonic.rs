//! `mnemonic new` and `mnemonic check`.

use std::io::{self, IsTerminal, Read};

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
    println!("{}", phrase.as_str());
    eprintln!(
        "Write these {} words down on paper, in order. Anyone who has them holds your keys.",
        mnemonic.word_count()
    );
    Ok(())
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
