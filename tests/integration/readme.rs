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
        if let Err(e) = Config::from_toml(&text) {
            panic!("README.md line {line}: {e}\n{block}");
        }
    }
}
