//! A small data-driven test runner in the style of Pebble's `datadriven`
//! package: a file holds commands, each followed by optional input lines,
//! `----` and the expected output, then a blank line. `#` starts a comment
//! line between commands.
//!
//! ```text
//! # a comment
//! write n=3 sync
//! ----
//! lsns 1..3
//! ```
//!
//! Run with `REWRITE=1` to replace the expected output with the actual one
//! (then review the diff).

use std::fmt::Write as _;
use std::path::Path;

/// One command of a script.
#[derive(Clone, Debug)]
pub struct Command {
    /// The command word.
    pub name: String,
    /// `key=value` and bare `flag` arguments, in order.
    pub args: Vec<(String, Option<String>)>,
    /// The line number in the file.
    pub line: usize,
    /// The lines between the command and `----`.
    pub input: Vec<String>,
}

impl Command {
    /// The value of `key=value`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether the bare flag (or key) is present.
    pub fn has(&self, flag: &str) -> bool {
        self.args.iter().any(|(k, _)| k == flag)
    }

    /// The first bare argument.
    pub fn positional(&self, i: usize) -> Option<&str> {
        self.args
            .iter()
            .filter(|(_, v)| v.is_none())
            .nth(i)
            .map(|(k, _)| k.as_str())
    }

    /// Parses `key` as a number, with `default`.
    pub fn num(&self, key: &str, default: u64) -> u64 {
        self.get(key).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("line {}: {key}={v} is not a number", self.line))
        })
    }
}

struct Block {
    command_line: String,
    command: Command,
    expected: String,
}

fn parse(text: &str) -> Vec<(Vec<String>, Option<Block>)> {
    // Each item: the lines before a command (comments, blanks) and the command.
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut pre = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            pre.push(line.to_owned());
            i += 1;
            continue;
        }
        let command_line = line.to_owned();
        let line_no = i + 1;
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default().to_owned();
        let args = words
            .map(|w| match w.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (w.to_owned(), None),
            })
            .collect();
        i += 1;
        let mut input = Vec::new();
        while lines.get(i).is_some_and(|l| *l != "----" && !l.is_empty()) {
            input.push(lines[i].to_owned());
            i += 1;
        }
        assert!(
            lines.get(i).is_some_and(|l| *l == "----"),
            "line {}: expected ---- after the command",
            i + 1
        );
        i += 1;
        let command_line = std::iter::once(command_line)
            .chain(input.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n");
        let mut expected = String::new();
        while i < lines.len() && !lines[i].is_empty() {
            expected.push_str(lines[i]);
            expected.push('\n');
            i += 1;
        }
        out.push((
            std::mem::take(&mut pre),
            Some(Block {
                command_line,
                command: Command {
                    name,
                    args,
                    line: line_no,
                    input,
                },
                expected,
            }),
        ));
    }
    if !pre.is_empty() {
        out.push((pre, None));
    }
    out
}

/// Runs every command of the script at `path` through `run`, comparing each
/// output with the expected one (or rewriting the file with `REWRITE=1`).
pub fn run_file(path: &Path, mut run: impl FnMut(&Command) -> String) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rewrite = std::env::var_os("REWRITE").is_some();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for (pre, block) in parse(&text) {
        for l in pre {
            rewritten.push_str(&l);
            rewritten.push('\n');
        }
        let Some(block) = block else { continue };
        if std::env::var_os("DD_VERBOSE").is_some() {
            eprintln!("> {}", block.command_line);
        }
        let mut actual = run(&block.command);
        if std::env::var_os("DD_VERBOSE").is_some() {
            eprint!("{actual}");
        }
        if !actual.is_empty() && !actual.ends_with('\n') {
            actual.push('\n');
        }
        if actual != block.expected {
            failures.push(format!(
                "{}:{}: {}\n--- expected\n{}--- actual\n{}",
                path.display(),
                block.command.line,
                block.command_line,
                block.expected,
                actual
            ));
        }
        let _ = write!(rewritten, "{}\n----\n{}", block.command_line, actual);
    }
    if rewrite {
        std::fs::write(path, rewritten).unwrap();
        return;
    }
    assert!(
        failures.is_empty(),
        "{} command(s) gave unexpected output (REWRITE=1 to accept):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
