//! Write tokens: the token file, scopes, and the constant-time lookup of a presented token.
//! Only SHA-256 digests of tokens are ever read from disk or kept in memory.
//!
//! File format, one token per line (`#` starts a comment):
//! `NAME SHA256_HEX SCOPES`, with SCOPES a comma-separated list of `read`, `admin` and
//! `write:<glob>` (a glob on server_group, e.g. `write:rsyslog-*`).

use std::fmt;
use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::ServerGroup;

/// What a token may do.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Read the state and the history (needed only with --read-requires-token).
    Read,
    /// Everything: write any server_group, and read.
    Admin,
    /// Write reports whose server_group matches the glob.
    Write(glob::Pattern),
}

impl Scope {
    pub fn parse(text: &str) -> Result<Scope, String> {
        match text {
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            _ => {
                let Some(glob) = text.strip_prefix("write:") else {
                    return Err(format!(
                        "unknown scope {text:?}: use read, admin or write:<glob>"
                    ));
                };
                if glob.is_empty() {
                    return Err("write: needs a server_group glob, e.g. write:rsyslog-*".into());
                }
                if let Some(bad) = glob.chars().find(|c| {
                    !(c.is_ascii_alphanumeric()
                        || matches!(c, '.' | '_' | '-' | '*' | '?' | '[' | ']' | '!'))
                }) {
                    return Err(format!(
                        "write:{glob}: {bad:?} cannot appear in a server_group glob"
                    ));
                }
                glob::Pattern::new(glob)
                    .map(Scope::Write)
                    .map_err(|e| format!("write:{glob}: {e}"))
            }
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Read => f.write_str("read"),
            Scope::Admin => f.write_str("admin"),
            Scope::Write(glob) => write!(f, "write:{}", glob.as_str()),
        }
    }
}

/// One line of the token file.
#[derive(Clone, Debug)]
pub struct Token {
    pub name: String,
    digest: [u8; 32],
    pub scopes: Vec<Scope>,
}

impl Token {
    pub fn may_write(&self, group: &ServerGroup) -> bool {
        self.scopes.iter().any(|scope| match scope {
            Scope::Admin => true,
            Scope::Write(glob) => glob.matches(group.as_str()),
            Scope::Read => false,
        })
    }

    pub fn may_read(&self) -> bool {
        self.scopes
            .iter()
            .any(|scope| matches!(scope, Scope::Read | Scope::Admin))
    }

    /// Operations on the whole service (backups, retention on demand).
    pub fn is_admin(&self) -> bool {
        self.scopes
            .iter()
            .any(|scope| matches!(scope, Scope::Admin))
    }
}

/// The tokens of one token file.
#[derive(Clone, Debug, Default)]
pub struct TokenSet {
    tokens: Vec<Token>,
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("the name must be 1–64 characters".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(bad) => Err(format!(
            "the name may contain only letters, digits, `.`, `_` and `-`; found {bad:?}"
        )),
        None => Ok(()),
    }
}

fn parse_scopes(text: &str) -> Result<Vec<Scope>, String> {
    text.split(',').map(Scope::parse).collect()
}

impl TokenSet {
    /// Parses a token file; an error names the line (1-based) and the problem.
    pub fn parse(text: &str) -> Result<TokenSet, (usize, String)> {
        let mut tokens: Vec<Token> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, digest, scopes] = fields[..] else {
                return Err((
                    line_no,
                    format!(
                        "expected `NAME SHA256_HEX SCOPES`, found {} field(s)",
                        fields.len()
                    ),
                ));
            };
            check_name(name).map_err(|p| (line_no, p))?;
            let bytes = hex::decode(digest)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .filter(|_| digest.bytes().all(|b| !b.is_ascii_uppercase()))
                .ok_or_else(|| {
                    (
                        line_no,
                        "the digest must be 64 lower-case hex digits (sha256 of the token)".into(),
                    )
                })?;
            let scopes = parse_scopes(scopes).map_err(|p| (line_no, p))?;
            if tokens.iter().any(|t| t.name == name) {
                return Err((line_no, format!("the name {name} is used twice")));
            }
            if tokens.iter().any(|t| t.digest == bytes) {
                return Err((line_no, "this digest is already listed".into()));
            }
            tokens.push(Token {
                name: name.to_owned(),
                digest: bytes,
                scopes,
            });
        }
        Ok(TokenSet { tokens })
    }

    /// Reads and parses the token file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<TokenSet> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        TokenSet::parse(&text).map_err(|(line, problem)| {
            anyhow::anyhow!("token file {} line {line}: {problem}", path.display())
        })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Token> {
        self.tokens.iter()
    }

    /// The token whose digest matches. Every stored digest is compared, in constant time, so
    /// the answer's timing does not tell how close a guess came.
    pub fn authenticate(&self, presented: &str) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.digest.ct_eq(&digest)) {
                found = Some(token);
            }
        }
        found
    }
}

/// `hex(sha256(token))`, as the token file stores it.
pub fn digest_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token: `gst_` and 256 bits from the OS random number generator, base64url.
pub fn generate() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
    Ok(format!(
        "gst_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The token-file line for a token: `NAME SHA256_HEX SCOPES`. Validates name and scopes.
pub fn file_line(name: &str, token: &str, scopes: &[String]) -> Result<String, String> {
    check_name(name)?;
    if scopes.is_empty() {
        return Err("give at least one --scope".into());
    }
    let parsed = scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let scopes: Vec<String> = parsed.iter().map(Scope::to_string).collect();
    Ok(format!("{name} {} {}", digest_hex(token), scopes.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> ServerGroup {
        ServerGroup::parse(name).unwrap()
    }

    #[test]
    fn a_generated_token_round_trips_through_the_file() {
        let token = generate().unwrap();
        assert!(token.starts_with("gst_"));
        assert_eq!(token.len(), 4 + 43, "256 bits in base64url without padding");
        assert!(token[4..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let line = file_line("rsyslog-ci", &token, &["write:rsyslog-*".into()]).unwrap();
        let set = TokenSet::parse(&line).unwrap();
        let found = set.authenticate(&token).unwrap();
        assert_eq!(found.name, "rsyslog-ci");
        assert!(found.may_write(&group("rsyslog-prod")));
        assert!(!found.may_write(&group("splunk-prod")));
        assert!(!found.may_read());
        assert!(set.authenticate("gst_wrong").is_none());
        assert_ne!(generate().unwrap(), token);
    }

    #[test]
    fn scopes() {
        let token = "t";
        let line = format!(
            "all {} admin\nreader {} read\n",
            digest_hex(token),
            digest_hex("r")
        );
        let set = TokenSet::parse(&line).unwrap();
        let admin = set.authenticate(token).unwrap();
        assert!(admin.may_write(&group("anything")) && admin.may_read());
        let reader = set.authenticate("r").unwrap();
        assert!(reader.may_read() && !reader.may_write(&group("g")));
    }

    #[test]
    fn comments_and_blank_lines_are_ignored() {
        let text = format!(
            "# tokens\n\n  ci {} write:a,write:b   # the CI\n",
            digest_hex("x")
        );
        let set = TokenSet::parse(&text).unwrap();
        assert_eq!(set.len(), 1);
        let ci = set.authenticate("x").unwrap();
        assert!(ci.may_write(&group("a")) && ci.may_write(&group("b")));
    }

    #[test]
    fn malformed_lines_are_named() {
        let digest = digest_hex("x");
        let cases = [
            (format!("ci {digest}"), 1, "found 2 field"),
            (format!("\nci {digest} write:a extra"), 2, "found 4 field"),
            ("ci abc read".to_owned(), 1, "64 lower-case hex"),
            (
                format!("ci {} read", digest.to_uppercase()),
                1,
                "lower-case",
            ),
            (format!("ci {digest} write"), 1, "unknown scope"),
            (
                format!("ci {digest} write:"),
                1,
                "needs a server_group glob",
            ),
            (format!("ci {digest} write:a/b"), 1, "cannot appear"),
            (format!("ci {digest} write:[a"), 1, "write:[a"),
            (format!("c i {digest} read"), 1, "found 4 field"),
            (format!("c$ {digest} read"), 1, "name may contain"),
            (
                format!("a {digest} read\na {} read", digest_hex("y")),
                2,
                "used twice",
            ),
            (
                format!("a {digest} read\nb {digest} read"),
                2,
                "already listed",
            ),
        ];
        for (text, line, problem) in cases {
            let (got_line, got) = TokenSet::parse(&text).unwrap_err();
            assert_eq!(got_line, line, "{text}: {got}");
            assert!(got.contains(problem), "{text}: {got}");
        }
    }

    #[test]
    fn file_line_refuses_bad_names_and_scopes() {
        assert!(file_line("ci", "t", &[]).is_err());
        assert!(file_line("c i", "t", &["read".into()]).is_err());
        assert!(file_line("ci", "t", &["root".into()]).is_err());
        let line = file_line("ci", "t", &["read".into(), "write:x-*".into()]).unwrap();
        assert!(line.ends_with(" read,write:x-*"));
    }
}

/// The live token set of a running server, reloadable without a restart.
#[derive(Debug)]
pub struct Auth {
    path: std::path::PathBuf,
    tokens: std::sync::RwLock<std::sync::Arc<TokenSet>>,
    /// Seen file state (modified time and length), to notice a replaced file.
    stamp: std::sync::Mutex<Option<(std::time::SystemTime, u64)>>,
    /// Why the last reload failed, while the file cannot be loaded: no token is valid then.
    failure: std::sync::RwLock<Option<String>>,
    pub read_requires_token: bool,
}

fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Auth {
    /// Loads the token file; a malformed file is an error (start-up stops).
    pub fn load(path: &Path, read_requires_token: bool) -> anyhow::Result<Auth> {
        let stamp = file_stamp(path);
        let tokens = TokenSet::load(path)?;
        Ok(Auth {
            path: path.to_owned(),
            tokens: std::sync::RwLock::new(std::sync::Arc::new(tokens)),
            stamp: std::sync::Mutex::new(stamp),
            failure: std::sync::RwLock::new(None),
            read_requires_token,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current tokens (a cheap clone of a shared set).
    pub fn tokens(&self) -> std::sync::Arc<TokenSet> {
        match self.tokens.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The tokens in force, or why there are none: after a failed reload (the file deleted,
    /// unreadable or malformed) no token is valid until a reload succeeds. The server would not
    /// start with such a file, and it does not go on with the old one either: a revocation
    /// that did not load must not leave the revoked token working.
    pub fn valid_tokens(&self) -> Result<std::sync::Arc<TokenSet>, String> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        Ok(self.tokens())
    }

    /// Why the token file could not be loaded at the last reload, while it cannot.
    pub fn failure(&self) -> Option<String> {
        match self.failure.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_failure(&self, failure: Option<String>) {
        match self.failure.write() {
            Ok(mut guard) => *guard = failure,
            Err(poisoned) => *poisoned.into_inner() = failure,
        }
    }

    /// Re-reads the file. On error no token is valid until a reload succeeds (see
    /// `valid_tokens`), and the error is returned. Requests in flight keep the set they
    /// started with.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let stamp = file_stamp(&self.path);
        let tokens = match TokenSet::load(&self.path) {
            Ok(tokens) => tokens,
            Err(err) => {
                // The file as it failed: the next change, whatever its time (a backup put
                // back with `mv` or `cp -p`), is read again; the same broken file is not.
                if let Ok(mut seen) = self.stamp.lock() {
                    *seen = stamp;
                }
                self.set_failure(Some(format!(
                    "the token file {} could not be reloaded: {err:#}",
                    self.path.display()
                )));
                return Err(err);
            }
        };
        let count = tokens.len();
        match self.tokens.write() {
            Ok(mut guard) => *guard = std::sync::Arc::new(tokens),
            Err(poisoned) => *poisoned.into_inner() = std::sync::Arc::new(tokens),
        }
        if let Ok(mut seen) = self.stamp.lock() {
            *seen = stamp;
        }
        self.set_failure(None);
        Ok(count)
    }

    /// Whether the file changed (modified time or size) since it was last read, or since a
    /// reload last failed on it.
    pub fn changed_on_disk(&self) -> bool {
        let now = file_stamp(&self.path);
        match self.stamp.lock() {
            Ok(seen) => *seen != now,
            Err(_) => true,
        }
    }
}
