//! `archy market key | follow | unfollow | endorse | report`: the node's own operator key
//! (NIP-06) and what it signs for the operator. Follows go in the key's kind-3 contact list
//! (built on the newest copy the relays hold, so follows made with the same key elsewhere
//! are kept), endorsements are NIP-32 labels, reports NIP-56 reports; each is sent to the
//! node's relays, and each relay's answer is printed. The mnemonic of `key import` is read
//! from stdin, never from the command line (other users can read argv).

use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};
use archy_api::{
    EndorseRequest, FollowRequest, ImportOperatorKey, OperatorView, RelayResult, ReportRequest,
    VouchResponse,
};
use clap::Subcommand;
use zeroize::Zeroizing;

use super::Target;
use super::print::json_or;

#[derive(Subcommand)]
pub enum VouchCommand {
    /// This node's own Nostr key, which signs follows, endorsements and reports (made at the
    /// first one), and is always trusted; `key import` takes your own mnemonic instead.
    Key {
        #[command(subcommand)]
        command: Option<KeyCommand>,
    },
    /// Follow a publisher with the operator key: one hop from a trusted key scores 50.
    /// Every follow the key has (from any client) is kept.
    Follow {
        /// npub1…, 64 hex digits, or the did:key of a listed publisher.
        target: String,
        /// Publish even when no relay answers for the current contact list (built on this
        /// node's last copy: follows made elsewhere with the key may be lost).
        #[arg(long)]
        force: bool,
    },
    /// Stop following a publisher; every other follow is kept.
    Unfollow {
        target: String,
        #[arg(long)]
        force: bool,
    },
    /// Endorse a publisher, or one of its apps (NIP-32 label `endorse` in namespace `archy`).
    Endorse {
        /// A publisher (npub1…, hex, did:key) or an app id (`notes`, or `notes.<16 hex>`).
        target: String,
        /// The publisher's key (hex or a prefix), when several list the app.
        #[arg(long)]
        publisher: Option<String>,
        /// A further label in the `archy` namespace, e.g. `audited` (repeat for several).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Why, in words.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Report a publisher, an app or a listing's event (NIP-56).
    Report {
        /// A publisher (npub1…, hex, did:key), an app id, or a listing's event id.
        target: String,
        /// malware, impersonation, illegal, spam, nudity, profanity or other.
        #[arg(long)]
        reason: String,
        /// The publisher's key (hex or a prefix), when several list the app.
        #[arg(long)]
        publisher: Option<String>,
        /// Why, in words.
        #[arg(long, default_value = "")]
        comment: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Show the key and the keys it follows (the default).
    Show,
    /// Take your own BIP39 mnemonic (NIP-06, account 0), read from stdin, as this node's key.
    Import {
        /// Replace the key the node holds (what the old key signed stops counting here).
        #[arg(long)]
        replace: bool,
    },
}

pub async fn run(command: VouchCommand, target: &Target) -> anyhow::Result<()> {
    let client = target.client()?;
    let done = match command {
        VouchCommand::Key { command } => {
            let view = match command.unwrap_or(KeyCommand::Show) {
                KeyCommand::Show => client.operator().await?,
                KeyCommand::Import { replace } => {
                    let mnemonic = read_mnemonic()?;
                    let request = ImportOperatorKey {
                        mnemonic: mnemonic.to_string(),
                        replace,
                    };
                    let view = client.import_operator_key(&request).await;
                    drop(Zeroizing::new(request.mnemonic));
                    view?
                }
            };
            json_or(target.json, &view, print_operator);
            return Ok(());
        }
        VouchCommand::Follow { target, force } => {
            client.follow(&FollowRequest { target, force }).await?
        }
        VouchCommand::Unfollow { target, force } => {
            client.unfollow(&FollowRequest { target, force }).await?
        }
        VouchCommand::Endorse {
            target,
            publisher,
            labels,
            comment,
        } => {
            client
                .endorse(&EndorseRequest {
                    target,
                    publisher,
                    labels,
                    comment,
                })
                .await?
        }
        VouchCommand::Report {
            target,
            reason,
            publisher,
            comment,
        } => {
            client
                .report(&ReportRequest {
                    target,
                    publisher,
                    reason,
                    comment,
                })
                .await?
        }
    };
    json_or(target.json, &done, print_vouch);
    Ok(())
}

/// The mnemonic from stdin: typed (not echoed) on a terminal, else all of stdin.
fn read_mnemonic() -> anyhow::Result<Zeroizing<String>> {
    let text = if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password("Your mnemonic (the words, on one line): ")
                .context("reading the mnemonic")?,
        )
    } else {
        let mut text = Zeroizing::new(String::new());
        // Far more than any mnemonic: a wrong file piped in is not read whole.
        std::io::stdin()
            .take(8 * 1024)
            .read_to_string(&mut text)
            .context("reading the mnemonic from stdin")?;
        text
    };
    if text.trim().is_empty() {
        bail!("no mnemonic on stdin: `archy market key import < words.txt`");
    }
    Ok(text)
}

fn print_operator(v: &OperatorView) {
    match &v.key {
        Some(k) => {
            outln!("operator key: {}", k.npub);
            outln!("  hex:        {}", k.hex);
            outln!("  mnemonic:   {} (0600; back it up)", k.file);
            outln!("  follows:    {}", v.follows.len());
            for f in &v.follows {
                outln!("    {f}");
            }
        }
        None => outln!(
            "no operator key yet: the first `archy market follow`, `endorse` or `report` makes \
             one; `archy market key import < words` takes your own"
        ),
    }
}

fn print_relays(what: &str, relays: &[RelayResult]) {
    for r in relays {
        outln!(
            "  {what} {:<40} {} {}",
            r.relay,
            if r.ok { "ok" } else { "FAILED" },
            r.message
        );
    }
}

fn print_vouch(v: &VouchResponse) {
    outln!("{}", v.note);
    outln!("  signed by:  {}", v.operator);
    if let Some(id) = &v.event_id {
        outln!("  event:      {id} (kind {})", v.kind);
    }
    if let Some(n) = v.follows {
        outln!("  follows:    {n} keys");
    }
    print_relays("asked", &v.fetched);
    print_relays("sent to", &v.published);
    if let Some(score) = &v.score {
        outln!("  publisher's trust score now: {}/100", score.score);
        for term in &score.explanation {
            outln!("    {:+6} {}", term.points, term.reason);
        }
    }
}
