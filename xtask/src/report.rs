//! Running `cargo test` and reading what it printed: each test binary's `test result:` line,
//! the tests ignored (with their reasons) and failed.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// What one `cargo test` run did.
#[derive(Debug)]
pub(crate) struct TestRun {
    outcome: Outcome,
    status: ExitStatus,
}

/// Runs `cargo ARGS` in `root`, echoing its output line by line as it comes.
///
/// Cargo's stderr and the test binaries' stdout share one pipe, as on a terminal, so each
/// `test result:` line follows the `Running` line of its binary.
pub(crate) fn run(root: &Path, args: &[String]) -> io::Result<TestRun> {
    let (reader, writer) = io::pipe()?;
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    let mut child = command.spawn()?;
    // The command holds the pipe's writing ends: drop them, or the reader never sees the end.
    drop(command);

    let mut outcome = Outcome::new(root);
    let mut reader = BufReader::new(reader);
    let mut stdout = io::stdout().lock();
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line)? > 0 {
        stdout.write_all(&line)?;
        stdout.flush()?;
        outcome.read_line(String::from_utf8_lossy(&line).trim_end());
        line.clear();
    }
    drop(stdout);
    let status = child.wait()?;
    Ok(TestRun { outcome, status })
}

impl TestRun {
    /// Whether cargo succeeded, no test failed, and at least one test ran.
    pub(crate) fn succeeded(&self) -> bool {
        let totals = self.outcome.totals();
        self.status.success() && totals.failed == 0 && totals.passed > 0
    }

    /// The summary: one line per test binary, then what was ignored and failed,
    /// then the totals.
    pub(crate) fn print(&self) {
        let outcome = &self.outcome;
        println!("  passed  failed  ignored     time  test binary");
        for binary in &outcome.binaries {
            let counts = &binary.counts;
            println!(
                "  {:>6}  {:>6}  {:>7}  {:>7}  {}",
                counts.passed, counts.failed, counts.ignored, binary.time, binary.name
            );
        }
        print_list("ignored (not run)", &outcome.ignored);
        print_list("failed", &outcome.failed);
        let totals = outcome.totals();
        let binaries = outcome.binaries.len();
        println!(
            "total: {} passed, {} failed, {} ignored, in {binaries} test {}",
            totals.passed,
            totals.failed,
            totals.ignored,
            if binaries == 1 { "binary" } else { "binaries" },
        );
        if !self.status.success() {
            println!("cargo test failed ({})", self.status);
        } else if totals.passed == 0 {
            println!("no test ran: does the filter match any test?");
        }
    }
}

fn print_list(title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    println!("{title}:");
    for line in lines {
        println!("  {line}");
    }
}

/// What the output says, read one line at a time.
#[derive(Debug)]
struct Outcome {
    /// Where paths in the output are relative to.
    root: std::path::PathBuf,
    /// The binary running now, from the last `Running` or `Doc-tests` line.
    current: String,
    binaries: Vec<Binary>,
    ignored: Vec<String>,
    failed: Vec<String>,
}

#[derive(Debug)]
struct Binary {
    name: String,
    counts: Counts,
    time: String,
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Outcome {
    fn new(root: &Path) -> Self {
        Outcome {
            root: root.to_path_buf(),
            current: String::new(),
            binaries: Vec::new(),
            ignored: Vec::new(),
            failed: Vec::new(),
        }
    }

    fn read_line(&mut self, line: &str) {
        let trimmed = line.trim_start();
        if let Some(running) = trimmed.strip_prefix("Running ") {
            self.current = self.binary_name(running);
        } else if let Some(krate) = trimmed.strip_prefix("Doc-tests ") {
            self.current = format!("{krate} (doc tests)");
        } else if let Some(result) = line.strip_prefix("test result: ") {
            let (counts, time) = parse_result(result);
            self.binaries.push(Binary {
                name: self.current.clone(),
                counts,
                time,
            });
        } else if let Some(test) = line.strip_prefix("test ") {
            if let Some((name, verdict)) = test.split_once(" ... ") {
                if verdict == "FAILED" {
                    self.failed.push(format!("{}: {name}", self.current));
                } else if verdict == "ignored" {
                    self.ignored.push(format!("{}: {name}", self.current));
                } else if let Some(reason) = verdict.strip_prefix("ignored, ") {
                    self.ignored
                        .push(format!("{}: {name} ({reason})", self.current));
                }
            }
        }
    }

    /// `crates/tower-bearer-oauth2/tests/it/main.rs` for
    /// `tests/it/main.rs (target/debug/deps/it-0123abcd)`: every package has a `tests/it`,
    /// so the name comes from the crate root that the binary's dep-info file lists first.
    fn binary_name(&self, running: &str) -> String {
        let from_dep_info = running
            .rsplit_once(" (")
            .and_then(|(_, binary)| binary.strip_suffix(')'))
            .and_then(|binary| {
                let dep_info = self.root.join(binary).with_extension("d");
                let text = fs::read_to_string(dep_info).ok()?;
                let (_, sources) = text.lines().next()?.split_once(": ")?;
                let crate_root = Path::new(sources.split_whitespace().next()?);
                let relative = crate_root.strip_prefix(&self.root).unwrap_or(crate_root);
                Some(relative.display().to_string())
            });
        from_dep_info.unwrap_or_else(|| running.to_owned())
    }

    fn totals(&self) -> Counts {
        let mut totals = Counts::default();
        for binary in &self.binaries {
            totals.passed += binary.counts.passed;
            totals.failed += binary.counts.failed;
            totals.ignored += binary.counts.ignored;
        }
        totals
    }
}

/// Reads `ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.25s`.
fn parse_result(result: &str) -> (Counts, String) {
    let mut counts = Counts::default();
    let mut time = String::new();
    let fields = result.split_once(". ").map_or(result, |(_, fields)| fields);
    for field in fields.split("; ") {
        if let Some(finished) = field.strip_prefix("finished in ") {
            time = finished.to_owned();
            continue;
        }
        let Some((number, what)) = field.split_once(' ') else {
            continue;
        };
        let Ok(number) = number.parse() else {
            continue;
        };
        match what {
            "passed" => counts.passed = number,
            "failed" => counts.failed = number,
            "ignored" => counts.ignored = number,
            _ => {}
        }
    }
    (counts, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_gives_the_counts_and_time() {
        let (counts, time) = parse_result(
            "FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 4 filtered out; finished in 0.25s",
        );
        let expected = Counts {
            passed: 3,
            failed: 2,
            ignored: 1,
        };
        assert_eq!(counts, expected);
        assert_eq!(time, "0.25s");
    }

    #[test]
    fn each_result_belongs_to_the_binary_announced_before_it() {
        let mut outcome = Outcome::new(Path::new("/nowhere"));
        for line in [
            "     Running tests/it/main.rs (target/debug/deps/it-0123)",
            "test cache::a ... ok",
            "test cache::slow ... ignored, takes a minute",
            "test cache::b ... FAILED",
            "test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.00s",
            "   Doc-tests tower_bearer",
            "test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 2.00s",
        ] {
            outcome.read_line(line);
        }
        // Without a dep-info file, the binary keeps the name cargo printed.
        let names: Vec<&str> = outcome.binaries.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tests/it/main.rs (target/debug/deps/it-0123)",
                "tower_bearer (doc tests)"
            ]
        );
        assert_eq!(outcome.totals().passed, 8);
        assert_eq!(outcome.failed.len(), 1);
        assert!(outcome.ignored[0].ends_with("cache::slow (takes a minute)"));
    }
}
