//! The README's snippets, as written: every TOML block is a configuration verdict loads
//! (with one static authorizer in front of a block that only shows rules), every proxy's
//! run command is the one the real-proxy suite runs (`proxies::readme_command`), the
//! nginx snippet runs under real nginx (`regression.rs`), Icecast's mount block is the
//! one the real icecast2 runs (`callers.rs`) and the amqtt configuration is the one the
//! real broker runs (`tests/callers/amqtt_broker.py` takes it from the README).

use verdict::config::Config;

use crate::support::readme_blocks;

/// Rules shown alone still need someone to ask.
const PREAMBLE: &str = r#"
[authorizers.keys]
type = "static"
[[authorizers.keys.tokens]]
token = "preamble-token"
user_id = "u"
"#;

#[test]
fn every_toml_snippet_in_the_readme_is_a_configuration_verdict_loads() {
    verdict::init_crypto();
    let blocks = readme_blocks("toml");
    assert!(blocks.len() >= 5, "{} TOML blocks", blocks.len());
    for (line, block) in blocks {
        let text = if block.contains("[authorizers.") {
            block.clone()
        } else {
            format!("{PREAMBLE}{block}")
        };
        // a block that takes its secrets from the environment gets them there, as a
        // deployment would set them
        let loaded = if text.contains("_env = ") {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("readme.toml");
            std::fs::write(&file, format!("[server]\nlisten = \"127.0.0.1:0\"\n{text}"))
                .expect("write");
            let env = text
                .lines()
                .filter_map(|l| {
                    l.split_once("_env = ")
                        .map(|(_, v)| v.trim().trim_matches('"'))
                })
                .map(|name| {
                    (
                        name.to_string(),
                        format!("{name}-value-of-at-least-32-bytes"),
                    )
                })
                .collect();
            Config::load(&verdict::config::Source {
                file: Some(file),
                env: Some(env),
            })
        } else {
            Config::from_toml(&text)
        };
        if let Err(e) = loaded {
            panic!("README.md line {line}: {e}\n{block}");
        }
    }
}
