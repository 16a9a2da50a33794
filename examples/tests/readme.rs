//! Every Rust block of the README is compiled: `readme.rs` holds each one, line for line,
//! inside a function that gives it its context, and this test checks that the two agree, so
//! a README block cannot change without the compiled copy, nor drift from the crates.

use std::path::Path;

/// The Rust code blocks of a Markdown file, each without the indentation of its fence.
fn markdown_blocks(markdown: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, Vec<String>)> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if trimmed.starts_with("```rust") {
                    open = Some((line.len() - trimmed.len(), Vec::new()));
                }
            }
            Some((indent, lines)) => {
                if trimmed.starts_with("```") {
                    blocks.push(std::mem::take(lines));
                    open = None;
                } else {
                    lines.push(strip_indent(line, *indent));
                }
            }
        }
    }
    assert!(open.is_none(), "a Rust block in the README is never closed");
    blocks
}

/// The regions of `readme.rs` between `// README begin` and `// README end`, without the
/// indentation of their `begin` marker.
fn compiled_blocks(source: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, Vec<String>)> = None;
    for line in source.lines() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed) {
            (None, "// README begin") => open = Some((line.len() - trimmed.len(), Vec::new())),
            (Some((_, lines)), "// README end") => {
                blocks.push(std::mem::take(lines));
                open = None;
            }
            (Some((indent, lines)), _) => lines.push(strip_indent(line, *indent)),
            (None, _) => {}
        }
    }
    assert!(
        open.is_none(),
        "a `// README begin` in readme.rs has no `// README end`"
    );
    blocks
}

/// `line` without its first `indent` columns, which must be blank (an empty line may be
/// shorter).
fn strip_indent(line: &str, indent: usize) -> String {
    let cut = line.len().min(indent);
    assert!(
        line[..cut].trim().is_empty(),
        "a line is indented less than its block: {line:?}"
    );
    line[cut..].to_owned()
}

#[test]
fn every_rust_block_of_the_readme_is_compiled_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).expect("README.md");
    let compiled = std::fs::read_to_string(root.join("readme.rs")).expect("examples/readme.rs");
    let readme = markdown_blocks(&readme);
    let compiled = compiled_blocks(&compiled);
    assert!(!readme.is_empty(), "no Rust blocks found in the README");
    for (n, block) in readme.iter().enumerate() {
        let found = compiled.get(n).unwrap_or_else(|| {
            panic!(
                "README Rust block {} has no copy in examples/readme.rs:\n{}",
                n + 1,
                block.join("\n")
            )
        });
        assert_eq!(
            found.join("\n"),
            block.join("\n"),
            "README Rust block {} differs from its copy in examples/readme.rs (blocks are \
             matched in order); change both",
            n + 1
        );
    }
    assert_eq!(
        compiled.len(),
        readme.len(),
        "examples/readme.rs has more blocks than the README"
    );
}

#[test]
fn the_block_readers_find_indented_blocks_and_keep_blank_lines() {
    let markdown = "text\n```rust\nlet a = 1;\n\nlet b = 2;\n```\n- item\n\n  ```rust\n  let c = 3;\n  ```\n```sh\nls\n```\n";
    assert_eq!(
        markdown_blocks(markdown),
        [vec!["let a = 1;", "", "let b = 2;"], vec!["let c = 3;"]]
    );
    let source = "fn f() {\n    // README begin\n    let a = 1;\n\n        nested();\n    // README end\n}\n";
    assert_eq!(
        compiled_blocks(source),
        [vec!["let a = 1;", "", "    nested();"]]
    );
}
