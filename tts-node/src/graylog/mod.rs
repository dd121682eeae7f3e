//! The Graylog kit: the content pack for a cluster (`pack`) and the offline
//! check of a pack against Graylog's rules and the node's fields
//! (`validate`). `deploy/graylog/content-pack.json` is the pack for the
//! nodes `scripts/start-cluster.sh 3` starts; a test keeps it up to date.

pub mod pack;
pub mod validate;

use std::path::Path;

use anyhow::{bail, Context};

/// `--check-graylog-pack FILE`: prints each problem, fails when there is one.
pub fn check_file(file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--check-graylog-pack: reading {}", file.display()))?;
    let pack: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--check-graylog-pack: {} is not JSON", file.display()))?;
    let problems = validate::check(&pack, &validate::node_sends);
    for p in &problems {
        eprintln!("{p}");
    }
    if !problems.is_empty() {
        bail!(
            "{}: {} problem(s); Graylog would refuse the pack or misbehave with it",
            file.display(),
            problems.len()
        );
    }
    let entities = pack["entities"].as_array().map_or(0, Vec::len);
    println!(
        "{}: a valid content pack ({entities} entities)",
        file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::pack::{content_pack, PackSpec};
    use super::validate::{check, fields_in_query, node_sends, Problem};

    /// The webhook of the committed example pack.
    const EXAMPLE_WEBHOOK: &str = "http://alert-sink:8080/tts-alerts";

    fn example_spec() -> PackSpec {
        PackSpec::new(
            (1..=3).map(|i| format!("tts-node-{i:02}")).collect(),
            EXAMPLE_WEBHOOK.into(),
        )
    }

    fn example() -> Value {
        content_pack(&example_spec())
    }

    fn problems(pack: &Value) -> Vec<Problem> {
        check(pack, &node_sends)
    }

    /// The entity of `kind` whose data title contains `title`.
    fn entity<'a>(pack: &'a mut Value, kind: &str, title: &str) -> &'a mut Value {
        pack["entities"]
            .as_array_mut()
            .and_then(|es| {
                es.iter_mut().find(|e| {
                    e["type"]["name"] == kind
                        && (e["data"]["title"]["@value"]
                            .as_str()
                            .is_some_and(|t| t.contains(title))
                            || e["data"]["title"]
                                .as_str()
                                .is_some_and(|t| t.contains(title)))
                })
            })
            .unwrap_or_else(|| panic!("no {kind} entity titled {title}"))
    }

    /// Breaks the example with `edit` and asserts that `rule` (and only
    /// `rule`) fires, at a path containing `at`.
    fn breaks(rule: &str, at: &str, edit: impl FnOnce(&mut Value)) {
        let mut pack = example();
        edit(&mut pack);
        let found = problems(&pack);
        assert!(
            found.iter().any(|p| p.rule == rule && p.at.contains(at)),
            "expected [{rule}] at {at}, got {found:#?}"
        );
        let others: Vec<_> = found.iter().filter(|p| p.rule != rule).collect();
        assert!(others.is_empty(), "only [{rule}] should fire: {others:#?}");
    }

    #[test]
    fn the_generated_pack_passes() {
        let found = problems(&example());
        assert!(found.is_empty(), "{found:#?}");
        let one = content_pack(&PackSpec::new(vec!["solo".into()], "https://h/x".into()));
        assert!(problems(&one).is_empty());
    }

    #[test]
    fn the_committed_pack_is_the_generated_one() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/graylog/content-pack.json"
        );
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(
            committed == example(),
            "deploy/graylog/content-pack.json is stale: regenerate it with\n  \
             tts-node --print-graylog-pack --graylog-webhook-url {EXAMPLE_WEBHOOK} > deploy/graylog/content-pack.json"
        );
    }

    #[test]
    fn the_pack_has_what_an_operator_needs() {
        let pack = example();
        let es = pack["entities"].as_array().unwrap();
        let count = |k: &str| es.iter().filter(|e| e["type"]["name"] == k).count();
        assert_eq!(count("input"), 1);
        assert_eq!(
            count("stream"),
            4,
            "a stream per node and the errors stream"
        );
        assert_eq!(count("event_definition"), 6);
        assert_eq!(count("notification"), 1);
        assert_eq!(count("url_allowlist_entry"), 1);
        assert_eq!(count("dashboard"), 1);
        let mut pack = pack;
        let oom = entity(&mut pack, "event_definition", "CUDA out of memory");
        let cfg = &oom["data"]["config"];
        assert_eq!(cfg["query"]["@value"], "error_code:CUDA_OOM");
        assert_eq!(cfg["group_by"], json!(["node_id"]));
        assert_eq!(cfg["search_within_ms"], 60_000);
        assert_eq!(cfg["conditions"]["expression"]["right"]["value"], 5.0);
        let keys = entity(&mut pack, "event_definition", "without a valid API key");
        let cfg = &keys["data"]["config"];
        assert_eq!(cfg["query"]["@value"], "error_code:UNAUTHORIZED");
        assert_eq!(cfg["group_by"], json!(["node_id", "client_addr"]));
        assert_eq!(cfg["conditions"]["expression"]["right"]["value"], 20.0);
        let node2 = entity(&mut pack, "stream", "node tts-node-02");
        assert_eq!(
            node2["data"]["stream_rules"][0]["value"]["@value"],
            "tts-node-02"
        );
        let input = entity(&mut pack, "input", "GELF TCP");
        assert_eq!(input["data"]["configuration"]["port"]["@type"], "parameter");
        // The same settings give the same pack; another cluster other ids.
        assert_eq!(example(), example());
        let mut other = example_spec();
        other.cluster = "eu".into();
        assert_ne!(content_pack(&other)["id"], example()["id"]);
    }

    #[test]
    fn query_fields_are_read_outside_quotes() {
        assert_eq!(
            fields_in_query("error_code:CUDA_OOM AND _exists_:duration_ms OR message:\"a:b\""),
            ["error_code", "duration_ms", "message"]
        );
        assert!(fields_in_query("").is_empty());
    }

    #[test]
    fn rule_envelope() {
        breaks("envelope", "pack.v", |p| p["v"] = json!("2"));
        breaks("envelope", "pack.rev", |p| p["rev"] = json!("1"));
    }

    #[test]
    fn rule_unknown_key() {
        breaks("unknown-key", "stream_rules[0].negate", |p| {
            entity(p, "stream", "node tts-node-01")["data"]["stream_rules"][0]["negate"] =
                json!(true);
        });
        breaks("unknown-key", "pack.tags", |p| p["tags"] = json!([]));
    }

    #[test]
    fn rule_value_reference() {
        breaks("value-reference", "data.priority", |p| {
            entity(p, "event_definition", "CUDA")["data"]["priority"] =
                json!({"@type": "string", "@value": "3"});
        });
        breaks("value-reference", "data.alert", |p| {
            entity(p, "event_definition", "CUDA")["data"]["alert"] = json!(true);
        });
    }

    #[test]
    fn rule_parameter() {
        breaks("parameter", "configuration.port", |p| {
            entity(p, "input", "GELF")["data"]["configuration"]["port"] =
                json!({"@type": "parameter", "@value": "GELF_PROT"});
        });
        breaks("parameter", "default_value", |p| {
            p["parameters"][0]["default_value"] = json!({"@type": "integer", "@value": 12201});
        });
    }

    #[test]
    fn rule_entity() {
        breaks("entity", "type", |p| {
            entity(p, "dashboard", "cluster")["type"]["version"] = json!("1");
        });
        breaks("entity", "id", |p| {
            let id = entity(p, "stream", "node tts-node-01")["id"].clone();
            entity(p, "stream", "node tts-node-02")["id"] = id;
        });
        breaks("entity", "constraints", |p| {
            entity(p, "notification", "webhook")["constraints"] = json!([]);
        });
    }

    #[test]
    fn rule_reference() {
        breaks("reference", "config.streams[0]", |p| {
            entity(p, "event_definition", "CUDA")["data"]["config"]["streams"] =
                json!(["5f00000000000000000000aa"]);
        });
        breaks("reference", "notification_id", |p| {
            entity(p, "event_definition", "CUDA")["data"]["notifications"][0]["notification_id"]
                ["@value"] = json!("nope");
        });
        breaks("reference", "search_types[0].streams", |p| {
            let stream = entity(p, "stream", "errors")["id"].clone();
            entity(p, "dashboard", "cluster")["data"]["search"]["queries"][0]["search_types"][0]
                ["streams"] = json!([stream]);
        });
    }

    #[test]
    fn rule_stream_rule() {
        breaks("stream-rule", "stream_rules[0].type", |p| {
            entity(p, "stream", "node tts-node-01")["data"]["stream_rules"][0]["type"]["@value"] =
                json!("EQUALS");
        });
        breaks("stream-rule", "stream_rules[0].value", |p| {
            entity(p, "stream", "node tts-node-01")["data"]["stream_rules"][0]["value"]["@value"] =
                json!("");
        });
    }

    #[test]
    fn rule_widget_mapping() {
        breaks("widget-mapping", "widget_mapping.w-latency", |p| {
            entity(p, "dashboard", "cluster")["data"]["state"]["q-cluster"]["widget_mapping"]
                ["w-latency"] = json!(["st-missing"]);
        });
        breaks("widget-mapping", "series[1]", |p| {
            entity(p, "dashboard", "cluster")["data"]["state"]["q-cluster"]["widgets"][0]
                ["config"]["series"][1]["function"] = json!("max(duration_ms)");
        });
        breaks("widget-mapping", "positions", |p| {
            let state = &mut entity(p, "dashboard", "cluster")["data"]["state"]["q-cluster"];
            state["positions"].as_object_mut().unwrap().remove("w-rtf");
        });
    }

    #[test]
    fn rule_pivot() {
        breaks("pivot", "series[0].percentile", |p| {
            let st = &mut entity(p, "dashboard", "cluster")["data"]["search"]["queries"][0]
                ["search_types"][0];
            st["series"][0]
                .as_object_mut()
                .unwrap()
                .remove("percentile");
        });
        breaks("pivot", "column_groups[0].type", |p| {
            let st = &mut entity(p, "dashboard", "cluster")["data"]["search"]["queries"][0]
                ["search_types"][0];
            st["column_groups"][0]["type"] = json!("terms");
        });
    }

    #[test]
    fn rule_event_window() {
        breaks("event-window", "search_within_ms", |p| {
            entity(p, "event_definition", "CUDA")["data"]["config"]["search_within_ms"] = json!(0);
        });
        breaks("event-window", "execute_every_ms", |p| {
            entity(p, "event_definition", "CUDA")["data"]["config"]["execute_every_ms"] =
                json!(600_000);
        });
    }

    #[test]
    fn rule_event_series() {
        breaks("event-series", "group_by", |p| {
            let cfg = &mut entity(p, "event_definition", "CUDA")["data"]["config"];
            cfg["series"] = json!([]);
            cfg["conditions"] = json!({"expression": null});
            cfg["event_limit"] = json!(10);
        });
        breaks("event-series", "series[0].field", |p| {
            entity(p, "event_definition", "slow")["data"]["config"]["series"][0]
                .as_object_mut()
                .unwrap()
                .remove("field");
        });
    }

    #[test]
    fn rule_event_condition() {
        breaks("event-condition", "expression.left.ref", |p| {
            entity(p, "event_definition", "CUDA")["data"]["config"]["conditions"]["expression"]
                ["left"]["ref"] = json!("count");
        });
        breaks("event-condition", "expression.right", |p| {
            entity(p, "event_definition", "CUDA")["data"]["config"]["conditions"]["expression"]
                ["right"] = json!({"expr": "true"});
        });
    }

    #[test]
    fn rule_version() {
        breaks("version", "event_summary_template", |p| {
            entity(p, "event_definition", "CUDA")["data"]["event_summary_template"] =
                json!({"@type": "string", "@value": ""});
        });
        breaks("version", "query_parameters", |p| {
            entity(p, "event_definition", "CUDA")["data"]["config"]["query_parameters"] = json!([]);
        });
    }

    #[test]
    fn newer_keys_pass_with_a_newer_constraint() {
        let mut pack = example();
        let e = entity(&mut pack, "event_definition", "CUDA");
        e["constraints"] = json!([{"type": "server-version", "version": ">=7.1.0"}]);
        e["data"]["event_summary_template"] =
            json!({"@type": "string", "@value": "${source.node_id}"});
        assert!(problems(&pack).is_empty(), "{:#?}", problems(&pack));
    }

    #[test]
    fn rule_allowlist() {
        breaks("allowlist", "config.url", |p| {
            entity(p, "notification", "webhook")["data"]["config"]["url"]["@value"] =
                json!("http://alert-sink:8080/other");
        });
        breaks("allowlist", "data.type", |p| {
            entity(p, "url_allowlist_entry", "webhook")["data"]["type"] = json!("prefix");
        });
        // A regex entry, anchored, allows it.
        let mut pack = example();
        let a = entity(&mut pack, "url_allowlist_entry", "webhook");
        a["data"]["type"] = json!("regex");
        a["data"]["value"] = json!("^http://alert-sink:8080/.*$");
        assert!(problems(&pack).is_empty());
    }

    #[test]
    fn rule_field() {
        breaks("field", "config.query", |p| {
            entity(p, "event_definition", "slow")["data"]["config"]["query"]["@value"] =
                json!("_exists_:latency_ms");
        });
        breaks("field", "group_by[0]", |p| {
            entity(p, "event_definition", "CUDA")["data"]["config"]["group_by"][0] =
                json!("host_id");
            // key_spec and field_spec follow group_by in the generator
            entity(p, "event_definition", "CUDA")["data"]["key_spec"] = json!([]);
        });
        breaks("field", "row_groups", |p| {
            let st = &mut entity(p, "dashboard", "cluster")["data"]["search"]["queries"][0]
                ["search_types"][1];
            st["row_groups"][0]["fields"] = json!(["errorcode"]);
        });
    }
}
