//! An offline check of a Graylog content pack (`--check-graylog-pack FILE`)
//! against the rules Graylog's model classes enforce when a pack is uploaded
//! and installed (read from graylog2-server, 6.1 to 7.2), plus the rules its
//! REST API applies to event definitions (an installed pack skips them, and
//! then misbehaves at run time), and one of our own: every field the pack
//! names is one a node sends.
//!
//! Each problem names its rule, so a test can break a pack one way and see
//! that exact rule fire. Rules:
//!
//! | rule | what |
//! |---|---|
//! | `envelope` | `v` "1", non-blank `id`, integer `rev`, `name`, `summary`, `description`, `vendor`, `url` |
//! | `unknown-key` | a key the server's class does not have (Graylog refuses unknown properties) |
//! | `value-reference` | `{"@type","@value"}` with a JSON value of that type, where the class wants one |
//! | `parameter` | parameter definitions, and every `parameter` reference names one of the right type |
//! | `entity` | entity `v`, known type and version, non-blank unique ids, a `server-version` constraint |
//! | `reference` | stream and notification ids point at entities of the pack (or system streams) |
//! | `stream-rule` | stream matching type, rule types, rule fields and values |
//! | `widget-mapping` | dashboard state vs queries, widgets vs search types, series vs pivot series, positions |
//! | `pivot` | search types: bucket types, intervals, series types and their fields |
//! | `event-window` | `search_within_ms`, `execute_every_ms`, grace period |
//! | `event-series` | series ids and fields; group_by needs series and conditions |
//! | `event-condition` | the condition's expression tree and the series ids it refers to |
//! | `version` | keys that exist only on newer servers than the pack's constraint allows |
//! | `allowlist` | each HTTP notification URL matched by a URL allowlist entry of the pack |
//! | `field` | a field (stream rule, query, group, series, template) a node does not send |

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// One thing wrong with a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The rule (see the module's table).
    pub rule: &'static str,
    /// Where: a JSON path such as `entities[3].data.config.series[0]`.
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.at, self.message)
    }
}

/// System streams every Graylog has; packs may refer to them by id.
const SYSTEM_STREAMS: &[&str] = &[
    "000000000000000000000001",
    "000000000000000000000002",
    "000000000000000000000003",
    "000000000000000000000004",
];

/// Entity types and versions Graylog's `ModelTypes` knows.
const ENTITY_TYPES: &[(&str, &str)] = &[
    ("input", "1"),
    ("stream", "1"),
    ("stream_title", "1"),
    ("dashboard", "2"),
    ("search", "1"),
    ("event_definition", "1"),
    ("notification", "1"),
    ("url_allowlist_entry", "1"),
    ("url_whitelist_entry", "1"),
    ("output", "1"),
    ("event_procedure", "1"),
    ("event_procedure_step", "1"),
    ("search_filter", "1"),
    ("lookup_adapter", "1"),
    ("lookup_cache", "1"),
    ("lookup_table", "1"),
    ("pipeline", "1"),
    ("pipeline_rule", "1"),
    ("grok_pattern", "1"),
    ("sidecar_collector", "1"),
    ("sidecar_collector_configuration", "1"),
];

const STREAM_RULE_TYPES: &[&str] = &[
    "EXACT",
    "REGEX",
    "GREATER",
    "SMALLER",
    "PRESENCE",
    "CONTAINS",
    "ALWAYS_MATCH",
    "MATCH_INPUT",
];

/// Series types and whether they need a `field`.
const SERIES_TYPES: &[(&str, bool)] = &[
    ("count", false),
    ("percentage", false),
    ("avg", true),
    ("card", true),
    ("latest", true),
    ("max", true),
    ("min", true),
    ("stddev", true),
    ("sum", true),
    ("sumofsquares", true),
    ("variance", true),
    ("percentile", true),
];

/// A (major, minor) server version.
type Version = (u32, u32);

/// Checks `pack`; `known_field` says whether a node sends a field.
pub fn check(pack: &Value, known_field: &dyn Fn(&str) -> bool) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
        known_field,
        parameters: BTreeMap::new(),
    };
    c.pack(pack);
    c.problems
}

/// Fields the GELF layer and the node send, as `--print-graylog-fields` lists.
pub fn node_sends(field: &str) -> bool {
    crate::fields::find(field).is_some()
        || gelf_tracing::fields::ALL.contains(&field)
        || gelf_tracing::fields::GELF_STANDARD.contains(&field)
}

struct Checker<'a> {
    problems: Vec<Problem>,
    known_field: &'a dyn Fn(&str) -> bool,
    /// Declared parameters: name → type.
    parameters: BTreeMap<String, String>,
}

fn at(base: &str, key: &str) -> String {
    format!("{base}.{key}")
}

fn idx(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

impl Checker<'_> {
    fn bad(&mut self, rule: &'static str, at: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            rule,
            at: at.to_owned(),
            message: message.into(),
        });
    }

    /// `v` must be an object with keys from `allowed`, having all of `required`.
    fn keys<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &[&str],
        required: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(o) = v.as_object() else {
            self.bad("unknown-key", path, "must be an object");
            return None;
        };
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) && !required.contains(&k.as_str()) {
                self.bad(
                    "unknown-key",
                    &at(path, k),
                    format!("`{k}` is not a key Graylog knows here (it refuses unknown keys)"),
                );
            }
        }
        for r in required {
            if !o.contains_key(*r) {
                self.bad("unknown-key", path, format!("`{r}` is required"));
            }
        }
        Some(o)
    }

    /// A ValueReference of `want` type (or a parameter of that type);
    /// returns its value when it is not a parameter.
    fn vr<'v>(&mut self, v: Option<&'v Value>, path: &str, want: &str) -> Option<&'v Value> {
        let v = v?;
        let Some(o) = v.as_object() else {
            self.bad(
                "value-reference",
                path,
                format!("must be a value reference {{\"@type\":\"{want}\",\"@value\":…}}"),
            );
            return None;
        };
        if o.len() != 2 || !o.contains_key("@type") || !o.contains_key("@value") {
            self.bad(
                "value-reference",
                path,
                "a value reference has exactly `@type` and `@value`",
            );
            return None;
        }
        let kind = o["@type"].as_str().unwrap_or_default().to_ascii_lowercase();
        let value = &o["@value"];
        if kind == "parameter" {
            let name = value.as_str().unwrap_or_default();
            match self.parameters.get(name).cloned() {
                None => self.bad(
                    "parameter",
                    path,
                    format!("refers to the parameter `{name}`, which the pack does not declare"),
                ),
                Some(t) if t != want => self.bad(
                    "parameter",
                    path,
                    format!("the parameter `{name}` is {t}, this value must be {want}"),
                ),
                Some(_) => {}
            }
            return None;
        }
        if kind != want {
            self.bad(
                "value-reference",
                path,
                format!("must be of type {want}, not {kind}"),
            );
            return None;
        }
        if !json_fits(value, want) {
            self.bad(
                "value-reference",
                path,
                format!("@value {value} is not a JSON {want}"),
            );
            return None;
        }
        Some(value)
    }

    fn vr_str(&mut self, o: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        self.vr(o.get(key), &at(path, key), "string")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    fn vr_bool(&mut self, o: &Map<String, Value>, key: &str, path: &str) {
        self.vr(o.get(key), &at(path, key), "boolean");
    }

    fn pack(&mut self, pack: &Value) {
        let Some(o) = self.keys(
            pack,
            "pack",
            &["parameters", "created_at", "server_version"],
            &[
                "v",
                "id",
                "rev",
                "name",
                "summary",
                "description",
                "vendor",
                "url",
                "entities",
            ],
        ) else {
            return;
        };
        if o.get("v").and_then(Value::as_str) != Some("1") {
            self.bad(
                "envelope",
                "pack.v",
                "must be \"1\" (other versions cannot be installed)",
            );
        }
        if o.get("id")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            self.bad("envelope", "pack.id", "must be a non-blank string");
        }
        if !o
            .get("rev")
            .is_some_and(|r| r.is_u64() && r.as_u64() <= Some(i32::MAX as u64))
        {
            self.bad("envelope", "pack.rev", "must be an integer");
        }
        for k in ["name", "summary", "description", "vendor", "url"] {
            if !o.get(k).is_some_and(Value::is_string) {
                self.bad("envelope", &at("pack", k), "must be a string");
            }
        }
        if let Some(url) = o.get("url").and_then(Value::as_str) {
            if url.chars().any(char::is_whitespace) {
                self.bad("envelope", "pack.url", "must be a URI (\"\" is allowed)");
            }
        }
        self.parameter_definitions(o.get("parameters"));
        let Some(entities) = o.get("entities").and_then(Value::as_array) else {
            self.bad("envelope", "pack.entities", "must be an array");
            return;
        };
        let ids = self.entity_envelopes(entities);
        let allowlist: Vec<(String, String)> = entities
            .iter()
            .filter(|e| e["type"]["name"] == "url_allowlist_entry")
            .filter_map(|e| {
                Some((
                    e["data"]["type"].as_str()?.to_owned(),
                    e["data"]["value"].as_str()?.to_owned(),
                ))
            })
            .collect();
        for (i, e) in entities.iter().enumerate() {
            let path = format!("entities[{i}]");
            let since = min_version(e);
            let data = &e["data"];
            let data_path = at(&path, "data");
            match e["type"]["name"].as_str().unwrap_or_default() {
                "input" => self.input(data, &data_path),
                "stream" => self.stream(data, &data_path),
                "event_definition" => self.event_definition(data, &data_path, &ids, since),
                "notification" => self.notification(data, &data_path, &allowlist),
                "url_allowlist_entry" => self.allowlist_entry(data, &data_path),
                "dashboard" => {
                    self.dashboard(data, &data_path, &ids, i == first_dashboard(entities))
                }
                _ => {}
            }
        }
    }

    fn parameter_definitions(&mut self, params: Option<&Value>) {
        let Some(params) = params else { return };
        let Some(list) = params.as_array() else {
            self.bad("parameter", "pack.parameters", "must be an array");
            return;
        };
        for (i, p) in list.iter().enumerate() {
            let path = idx("pack.parameters", i);
            let Some(o) = self.keys(
                p,
                &path,
                &["default_value"],
                &["name", "title", "description", "type"],
            ) else {
                continue;
            };
            let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
            let kind = o.get("type").and_then(Value::as_str).unwrap_or_default();
            if name.trim().is_empty() {
                self.bad("parameter", &path, "a parameter needs a name");
                continue;
            }
            if !["boolean", "double", "float", "integer", "long", "string"].contains(&kind) {
                self.bad(
                    "parameter",
                    &at(&path, "type"),
                    format!("`{kind}` is not a parameter type"),
                );
                continue;
            }
            if let Some(d) = o.get("default_value") {
                if !json_fits(d, kind) {
                    self.bad(
                        "parameter",
                        &at(&path, "default_value"),
                        format!("the default {d} is not a JSON {kind} (it is the raw value, not a value reference)"),
                    );
                }
            }
            if self
                .parameters
                .insert(name.to_owned(), kind.to_owned())
                .is_some()
            {
                self.bad("parameter", &path, format!("`{name}` is declared twice"));
            }
        }
    }

    /// Checks each entity's envelope; returns the ids by type.
    fn entity_envelopes(&mut self, entities: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
        let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (i, e) in entities.iter().enumerate() {
            let path = format!("entities[{i}]");
            let Some(o) = self.keys(e, &path, &["constraints"], &["v", "type", "id", "data"])
            else {
                continue;
            };
            if o.get("v").and_then(Value::as_str) != Some("1") {
                self.bad("entity", &at(&path, "v"), "must be \"1\"");
            }
            let name = e["type"]["name"].as_str().unwrap_or_default();
            let version = e["type"]["version"].as_str().unwrap_or_default();
            if !ENTITY_TYPES.contains(&(name, version)) {
                self.bad(
                    "entity",
                    &at(&path, "type"),
                    format!("`{name}` version `{version}` is not an entity type Graylog installs"),
                );
            }
            let id = o.get("id").and_then(Value::as_str).unwrap_or_default();
            if id.trim().is_empty() {
                self.bad("entity", &at(&path, "id"), "must be a non-blank string");
            } else if !ids
                .entry(name.to_owned())
                .or_default()
                .insert(id.to_owned())
            {
                self.bad(
                    "entity",
                    &at(&path, "id"),
                    format!("two `{name}` entities have the id {id}"),
                );
            }
            let constraints = o.get("constraints").and_then(Value::as_array);
            let version_ok = constraints.is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "server-version"
                        && c["version"]
                            .as_str()
                            .is_some_and(|v| parse_range_min(v).is_some())
                })
            });
            if !version_ok {
                self.bad(
                    "entity",
                    &at(&path, "constraints"),
                    "needs a server-version constraint with a version range (Graylog would add `>=` the uploading server's version)",
                );
            }
        }
        ids
    }

    fn field(&mut self, name: &str, path: &str) {
        if !(self.known_field)(name) {
            self.bad(
                "field",
                path,
                format!("`{name}` is not a field the nodes send (tts-node --print-graylog-fields)"),
            );
        }
    }

    fn query_fields(&mut self, query: &str, path: &str) {
        for name in fields_in_query(query) {
            self.field(&name, path);
        }
    }

    fn input(&mut self, data: &Value, path: &str) {
        let Some(o) = self.keys(
            data,
            path,
            &[],
            &[
                "title",
                "type",
                "global",
                "configuration",
                "static_fields",
                "extractors",
            ],
        ) else {
            return;
        };
        self.vr_str(o, "title", path);
        let kind = self.vr_str(o, "type", path).unwrap_or_default();
        self.vr_bool(o, "global", path);
        let cfg_path = at(path, "configuration");
        let Some(cfg) = o.get("configuration").and_then(Value::as_object) else {
            return;
        };
        if kind.starts_with("org.graylog2.inputs.gelf.") {
            let typed: &[(&str, &str)] = &[
                ("bind_address", "string"),
                ("port", "integer"),
                ("recv_buffer_size", "integer"),
                ("number_worker_threads", "integer"),
                ("tls_enable", "boolean"),
                ("tls_cert_file", "string"),
                ("tls_key_file", "string"),
                ("tls_key_password", "string"),
                ("tls_client_auth", "string"),
                ("tls_client_auth_cert_file", "string"),
                ("tcp_keepalive", "boolean"),
                ("use_null_delimiter", "boolean"),
                ("max_message_size", "integer"),
                ("override_source", "string"),
                ("charset_name", "string"),
                ("decompress_size_limit", "integer"),
                ("idle_writer_timeout", "integer"),
                ("enable_cors", "boolean"),
                ("enable_bulk_receiving", "boolean"),
                ("path", "string"),
            ];
            for (k, v) in cfg {
                match typed.iter().find(|(n, _)| n == k) {
                    Some((_, t)) => {
                        self.vr(Some(v), &at(&cfg_path, k), t);
                    }
                    None => self.bad(
                        "unknown-key",
                        &at(&cfg_path, k),
                        format!("`{k}` is not a setting of GELF inputs"),
                    ),
                }
            }
            for k in ["bind_address", "port"] {
                if !cfg.contains_key(k) {
                    self.bad("unknown-key", &cfg_path, format!("the input needs `{k}`"));
                }
            }
        }
        if let Some(sf) = o.get("static_fields").and_then(Value::as_object) {
            for (k, v) in sf {
                if !valid_key(k) {
                    self.bad(
                        "unknown-key",
                        &at(path, "static_fields"),
                        format!("`{k}` is not a valid message field name"),
                    );
                }
                self.vr(Some(v), &at(&at(path, "static_fields"), k), "string");
            }
        }
    }

    fn stream(&mut self, data: &Value, path: &str) {
        let Some(o) = self.keys(
            data,
            path,
            &["description", "favorite_fields"],
            &[
                "title",
                "disabled",
                "matching_type",
                "stream_rules",
                "outputs",
                "alert_conditions",
                "alarm_callbacks",
                "default_stream",
                "remove_matches",
            ],
        ) else {
            return;
        };
        if self
            .vr_str(o, "title", path)
            .is_some_and(|t| t.trim().is_empty())
        {
            self.bad("stream-rule", &at(path, "title"), "a stream needs a title");
        }
        if o.contains_key("description") {
            self.vr_str(o, "description", path);
        }
        for k in ["disabled", "default_stream", "remove_matches"] {
            self.vr_bool(o, k, path);
        }
        if let Some(m) = self.vr_str(o, "matching_type", path) {
            if m != "AND" && m != "OR" {
                self.bad(
                    "stream-rule",
                    &at(path, "matching_type"),
                    format!("`{m}` is not AND or OR"),
                );
            }
        }
        let rules = list(o.get("stream_rules"));
        for (i, r) in rules.iter().enumerate() {
            let rp = idx(&at(path, "stream_rules"), i);
            let Some(ro) = self.keys(
                r,
                &rp,
                &[],
                &["type", "field", "value", "inverted", "description"],
            ) else {
                continue;
            };
            self.vr_bool(ro, "inverted", &rp);
            self.vr_str(ro, "description", &rp);
            let kind = self.vr_str(ro, "type", &rp).unwrap_or_default();
            let field = self.vr_str(ro, "field", &rp).unwrap_or_default();
            let value = self.vr_str(ro, "value", &rp).unwrap_or_default();
            if !STREAM_RULE_TYPES.contains(&kind.as_str()) {
                self.bad(
                    "stream-rule",
                    &at(&rp, "type"),
                    format!(
                        "`{kind}` is not a stream rule type ({})",
                        STREAM_RULE_TYPES.join(", ")
                    ),
                );
                continue;
            }
            let no_field = matches!(kind.as_str(), "ALWAYS_MATCH" | "MATCH_INPUT");
            if field.is_empty() && !no_field {
                self.bad(
                    "stream-rule",
                    &at(&rp, "field"),
                    format!("a {kind} rule needs a field"),
                );
            }
            if value.is_empty() && !matches!(kind.as_str(), "PRESENCE" | "ALWAYS_MATCH") {
                self.bad(
                    "stream-rule",
                    &at(&rp, "value"),
                    format!("a {kind} rule needs a value"),
                );
            }
            if matches!(kind.as_str(), "GREATER" | "SMALLER") && value.parse::<f64>().is_err() {
                self.bad(
                    "stream-rule",
                    &at(&rp, "value"),
                    format!("a {kind} rule compares with a number, not `{value}`"),
                );
            }
            if kind == "MATCH_INPUT" {
                self.bad(
                    "stream-rule",
                    &at(&rp, "type"),
                    "MATCH_INPUT names a server's input id: not portable in a pack",
                );
            }
            if !field.is_empty() && !no_field {
                self.field(&field, &at(&rp, "field"));
            }
        }
        if o.get("outputs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            self.bad(
                "reference",
                &at(path, "outputs"),
                "the pack has no output entities for this stream to use",
            );
        }
    }

    fn stream_refs(
        &mut self,
        list: Option<&Value>,
        path: &str,
        ids: &BTreeMap<String, BTreeSet<String>>,
    ) {
        let Some(list) = list.and_then(Value::as_array) else {
            return;
        };
        for (i, s) in list.iter().enumerate() {
            let id = s.as_str().unwrap_or_default();
            let in_pack = ["stream", "stream_title"]
                .iter()
                .any(|t| ids.get(*t).is_some_and(|set| set.contains(id)));
            if !in_pack && !SYSTEM_STREAMS.contains(&id) {
                self.bad(
                    "reference",
                    &idx(path, i),
                    format!("`{id}` is neither a stream of the pack nor a system stream (install fails: Missing Stream)"),
                );
            }
        }
    }

    fn event_definition(
        &mut self,
        data: &Value,
        path: &str,
        ids: &BTreeMap<String, BTreeSet<String>>,
        since: Version,
    ) {
        let mut allowed = vec![
            "_scope",
            "remediation_steps",
            "is_scheduled",
            "updated_at",
            "matched_at",
        ];
        let newer: &[(&str, Version)] = &[
            ("event_procedure", (6, 2)),
            ("event_summary_template", (7, 1)),
            ("tags", (7, 2)),
            ("tactics_techniques", (7, 2)),
        ];
        self.versioned(data, path, newer, since, &mut allowed);
        let Some(o) = self.keys(
            data,
            path,
            &allowed,
            &[
                "title",
                "description",
                "priority",
                "alert",
                "config",
                "field_spec",
                "key_spec",
                "notification_settings",
                "notifications",
                "storage",
            ],
        ) else {
            return;
        };
        if self
            .vr_str(o, "title", path)
            .is_some_and(|t| t.trim().is_empty())
        {
            self.bad(
                "event-series",
                &at(path, "title"),
                "an event definition needs a title",
            );
        }
        self.vr_str(o, "description", path);
        self.vr(o.get("priority"), &at(path, "priority"), "integer");
        self.vr_bool(o, "alert", path);
        if o.contains_key("is_scheduled") {
            self.vr_bool(o, "is_scheduled", path);
        }
        self.aggregation(
            o.get("config").unwrap_or(&Value::Null),
            &at(path, "config"),
            ids,
            since,
        );
        let mut spec_names = BTreeSet::new();
        if let Some(fs) = o.get("field_spec").and_then(Value::as_object) {
            for (name, spec) in fs {
                let fp = at(&at(path, "field_spec"), name);
                if !valid_key(name) {
                    self.bad(
                        "event-series",
                        &fp,
                        format!("`{name}` is not a valid event field name"),
                    );
                }
                spec_names.insert(name.clone());
                let Some(so) = self.keys(spec, &fp, &[], &["data_type", "providers"]) else {
                    continue;
                };
                if so.get("data_type").and_then(Value::as_str) != Some("string") {
                    self.bad("event-series", &at(&fp, "data_type"), "must be \"string\"");
                }
                for (j, p) in list(so.get("providers")).iter().enumerate() {
                    let pp = idx(&at(&fp, "providers"), j);
                    if p["type"] == "template-v1" {
                        if self
                            .keys(p, &pp, &["require_values"], &["type", "template"])
                            .is_some()
                        {
                            for f in template_fields(p["template"].as_str().unwrap_or_default()) {
                                self.field(&f, &at(&pp, "template"));
                            }
                        }
                    } else if p["type"] != "lookup-v1" {
                        self.bad(
                            "event-series",
                            &pp,
                            "a field provider is template-v1 or lookup-v1",
                        );
                    }
                }
            }
        }
        for (j, k) in list(o.get("key_spec")).iter().enumerate() {
            let k = k.as_str().unwrap_or_default();
            if !spec_names.contains(k) {
                self.bad(
                    "event-series",
                    &idx(&at(path, "key_spec"), j),
                    format!("key `{k}` is not in field_spec"),
                );
            }
        }
        let ns_path = at(path, "notification_settings");
        if let Some(ns) = self.keys(
            o.get("notification_settings").unwrap_or(&Value::Null),
            &ns_path,
            &["backlog_size"],
            &["grace_period_ms"],
        ) {
            if !ns.get("grace_period_ms").is_some_and(Value::is_u64) {
                self.bad(
                    "event-window",
                    &at(&ns_path, "grace_period_ms"),
                    "must be a non-negative integer (ms)",
                );
            }
        }
        let notifications = list(o.get("notifications"));
        for (j, n) in notifications.iter().enumerate() {
            let np = idx(&at(path, "notifications"), j);
            let Some(no) = self.keys(n, &np, &["notification_parameters"], &["notification_id"])
            else {
                continue;
            };
            if let Some(id) = self.vr_str(no, "notification_id", &np) {
                if !ids.get("notification").is_some_and(|s| s.contains(&id)) {
                    self.bad(
                        "reference",
                        &at(&np, "notification_id"),
                        format!("`{id}` is not a notification of the pack"),
                    );
                }
            }
        }
        let storage = list(o.get("storage"));
        for (j, st) in storage.iter().enumerate() {
            let sp = idx(&at(path, "storage"), j);
            if self.keys(st, &sp, &[], &["type", "streams"]).is_none() {
                continue;
            }
            if st["type"] != "persist-to-streams-v1" {
                self.bad(
                    "event-series",
                    &at(&sp, "type"),
                    "storage is persist-to-streams-v1",
                );
            }
            for (k, s) in list(Some(&st["streams"])).iter().enumerate() {
                if !SYSTEM_STREAMS.contains(&s.as_str().unwrap_or_default()) {
                    self.bad(
                        "reference",
                        &idx(&at(&sp, "streams"), k),
                        "storage streams are not resolved at install: use a system stream id (events: 000000000000000000000002)",
                    );
                }
            }
        }
    }

    /// Allows each key of `newer` when `since` reaches its version, and
    /// reports it when the pack's constraint lets older servers install it.
    fn versioned(
        &mut self,
        data: &Value,
        path: &str,
        newer: &[(&'static str, Version)],
        since: Version,
        allowed: &mut Vec<&'static str>,
    ) {
        for (k, v) in newer {
            if data.get(*k).is_some() {
                if since < *v {
                    self.bad(
                        "version",
                        &at(path, k),
                        format!(
                            "`{k}` exists from Graylog {}.{}, but the entity's constraint allows {}.{}: older servers refuse it",
                            v.0, v.1, since.0, since.1
                        ),
                    );
                }
                allowed.push(k);
            }
        }
    }

    fn aggregation(
        &mut self,
        cfg: &Value,
        path: &str,
        ids: &BTreeMap<String, BTreeSet<String>>,
        since: Version,
    ) {
        let mut allowed = vec!["filters", "event_limit", "conditions"];
        let newer: &[(&str, Version)] = &[
            ("stream_categories", (6, 1)),
            ("use_cron_scheduling", (6, 1)),
            ("cron_expression", (6, 1)),
            ("cron_timezone", (6, 1)),
            ("query_parameters", (6, 2)),
        ];
        self.versioned(cfg, path, newer, since, &mut allowed);
        let Some(o) = self.keys(
            cfg,
            path,
            &allowed,
            &[
                "type",
                "query",
                "streams",
                "group_by",
                "series",
                "search_within_ms",
                "execute_every_ms",
            ],
        ) else {
            return;
        };
        if o.get("type").and_then(Value::as_str) != Some("aggregation-v1") {
            self.bad(
                "event-series",
                &at(path, "type"),
                "the kit's definitions are aggregation-v1",
            );
            return;
        }
        if let Some(q) = self.vr_str(o, "query", path) {
            self.query_fields(&q, &at(path, "query"));
        }
        self.stream_refs(o.get("streams"), &at(path, "streams"), ids);
        for k in ["search_within_ms", "execute_every_ms"] {
            if o.get(k).and_then(Value::as_u64).unwrap_or(0) == 0 {
                self.bad(
                    "event-window",
                    &at(path, k),
                    "must be a positive integer (ms)",
                );
            }
        }
        if let (Some(w), Some(e)) = (
            o.get("search_within_ms").and_then(Value::as_u64),
            o.get("execute_every_ms").and_then(Value::as_u64),
        ) {
            if e > w {
                self.bad(
                    "event-window",
                    &at(path, "execute_every_ms"),
                    format!(
                        "runs every {e} ms over {w} ms: events between windows are never searched"
                    ),
                );
            }
        }
        if o.get("use_cron_scheduling") == Some(&Value::Bool(true))
            && o.get("cron_expression")
                .and_then(Value::as_str)
                .is_none_or(|c| c.trim().is_empty())
        {
            self.bad(
                "event-window",
                &at(path, "cron_expression"),
                "cron scheduling needs a cron expression",
            );
        }
        let group_by: Vec<String> = o
            .get("group_by")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for (j, g) in group_by.iter().enumerate() {
            self.field(g, &idx(&at(path, "group_by"), j));
        }
        let series = list(o.get("series"));
        let mut series_ids = BTreeSet::new();
        for (j, s) in series.iter().enumerate() {
            let sp = idx(&at(path, "series"), j);
            if let Some(id) = self.series(s, &sp, "event-series") {
                if !series_ids.insert(id.clone()) {
                    self.bad(
                        "event-series",
                        &sp,
                        format!("two series have the id `{id}`"),
                    );
                }
            }
        }
        let expression = o
            .get("conditions")
            .and_then(|c| c.get("expression"))
            .filter(|e| !e.is_null());
        if let Some(c) = o.get("conditions") {
            self.keys(c, &at(path, "conditions"), &[], &["expression"]);
        }
        match (series.is_empty(), expression) {
            (false, None) => self.bad(
                "event-series",
                &at(path, "conditions"),
                "series without a condition",
            ),
            (true, Some(_)) => self.bad(
                "event-series",
                &at(path, "series"),
                "a condition without series",
            ),
            _ => {}
        }
        if !group_by.is_empty() && (series.is_empty() || expression.is_none()) {
            self.bad(
                "event-series",
                &at(path, "group_by"),
                "grouping needs series and a condition",
            );
        }
        if series.is_empty() && o.get("event_limit").and_then(Value::as_u64).unwrap_or(0) == 0 {
            self.bad(
                "event-window",
                &at(path, "event_limit"),
                "a filter-only definition needs event_limit > 0",
            );
        }
        if let Some(e) = expression {
            self.condition(
                e,
                &at(&at(path, "conditions"), "expression"),
                &series_ids,
                true,
            );
        }
    }

    /// A pivot or event series; returns its id.
    fn series(&mut self, s: &Value, path: &str, rule: &'static str) -> Option<String> {
        let o = self.keys(
            s,
            path,
            &["field", "percentile", "whole_number", "strategy"],
            &["type", "id"],
        )?;
        let kind = o.get("type").and_then(Value::as_str).unwrap_or_default();
        let Some((_, needs_field)) = SERIES_TYPES.iter().find(|(t, _)| *t == kind) else {
            self.bad(
                rule,
                &at(path, "type"),
                format!("`{kind}` is not a series type"),
            );
            return None;
        };
        let field = o
            .get("field")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty());
        match field {
            Some(f) => self.field(f, &at(path, "field")),
            None if *needs_field => self.bad(
                rule,
                &at(path, "field"),
                format!("a {kind} series needs a field"),
            ),
            None => {}
        }
        if kind == "percentile"
            && !o
                .get("percentile")
                .and_then(Value::as_f64)
                .is_some_and(|p| (0.0..=100.0).contains(&p))
        {
            self.bad(
                rule,
                &at(path, "percentile"),
                "a percentile series needs `percentile` from 0 to 100",
            );
        }
        let id = o.get("id").and_then(Value::as_str).unwrap_or_default();
        if id.is_empty() {
            self.bad(
                rule,
                &at(path, "id"),
                "give each series an id (conditions and widgets refer to it)",
            );
            return None;
        }
        Some(id.to_owned())
    }

    fn condition(&mut self, e: &Value, path: &str, series: &BTreeSet<String>, boolean: bool) {
        let kind = e.get("expr").and_then(Value::as_str).unwrap_or_default();
        let bool_ops = ["true", "&&", "||", "!", "==", ">", ">=", "<", "<=", "group"];
        let num_ops = ["number", "number-ref"];
        let want: &[&str] = if boolean { &bool_ops } else { &num_ops };
        if !want.contains(&kind) {
            let what = if boolean { "a boolean" } else { "a number" };
            self.bad(
                "event-condition",
                path,
                format!("`{kind}` is not {what} expression here"),
            );
            return;
        }
        match kind {
            "&&" | "||" => {
                if self
                    .keys(e, path, &[], &["expr", "left", "right"])
                    .is_some()
                {
                    self.condition(&e["left"], &at(path, "left"), series, true);
                    self.condition(&e["right"], &at(path, "right"), series, true);
                }
            }
            "!" => {
                if self.keys(e, path, &[], &["expr", "left"]).is_some() {
                    self.condition(&e["left"], &at(path, "left"), series, true);
                }
            }
            "group" => {
                if self
                    .keys(e, path, &["operator"], &["expr", "child"])
                    .is_some()
                {
                    self.condition(&e["child"], &at(path, "child"), series, true);
                }
            }
            "==" | ">" | ">=" | "<" | "<=" => {
                if self
                    .keys(e, path, &[], &["expr", "left", "right"])
                    .is_some()
                {
                    self.condition(&e["left"], &at(path, "left"), series, false);
                    self.condition(&e["right"], &at(path, "right"), series, false);
                }
            }
            "number" => {
                if self.keys(e, path, &[], &["expr", "value"]).is_some() && !e["value"].is_number()
                {
                    self.bad("event-condition", &at(path, "value"), "must be a number");
                }
            }
            "number-ref" => {
                if self.keys(e, path, &[], &["expr", "ref"]).is_some() {
                    let r = e["ref"].as_str().unwrap_or_default();
                    if !series.contains(r) {
                        self.bad(
                            "event-condition",
                            &at(path, "ref"),
                            format!("refers to the series `{r}`, which the definition does not have (fails at run time)"),
                        );
                    }
                }
            }
            _ => {
                self.keys(e, path, &[], &["expr"]);
            }
        }
    }

    fn notification(&mut self, data: &Value, path: &str, allowlist: &[(String, String)]) {
        let Some(o) = self.keys(data, path, &[], &["title", "description", "config"]) else {
            return;
        };
        self.vr_str(o, "title", path);
        self.vr_str(o, "description", path);
        let cp = at(path, "config");
        let cfg = o.get("config").unwrap_or(&Value::Null);
        let url = match cfg.get("type").and_then(Value::as_str) {
            Some("http-notification-v1") => self
                .keys(cfg, &cp, &[], &["type", "url"])
                .and_then(|c| self.vr_str(c, "url", &cp)),
            Some("http-notification-v2") => {
                let c = self.keys(
                    cfg,
                    &cp,
                    &[],
                    &[
                        "type",
                        "url",
                        "skip_tls_verification",
                        "method",
                        "time_zone",
                        "content_type",
                        "headers",
                        "body_template",
                    ],
                );
                c.and_then(|c| self.vr_str(c, "url", &cp))
            }
            other => {
                if !matches!(
                    other,
                    Some(
                        "email-notification-v1"
                            | "slack-notification-v1"
                            | "teams-notification-v1"
                            | "teams-notification-v2"
                    )
                ) {
                    self.bad(
                        "unknown-key",
                        &at(&cp, "type"),
                        "not a notification type Graylog knows",
                    );
                }
                None
            }
        };
        let Some(url) = url else { return };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.bad(
                "allowlist",
                &at(&cp, "url"),
                format!("`{url}` is not an http(s) URL"),
            );
        }
        let allowed = allowlist.iter().any(|(kind, value)| match kind.as_str() {
            "literal" => *value == url,
            "regex" => regex::Regex::new(value).is_ok_and(|r| r.is_match(&url)),
            _ => false,
        });
        if !allowed {
            self.bad(
                "allowlist",
                &at(&cp, "url"),
                format!("no url_allowlist_entry of the pack matches `{url}`: Graylog would refuse to send the alert"),
            );
        }
    }

    fn allowlist_entry(&mut self, data: &Value, path: &str) {
        let Some(o) = self.keys(data, path, &[], &["id", "type", "title", "value"]) else {
            return;
        };
        for k in ["id", "title", "value"] {
            if o.get(k)
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
            {
                self.bad(
                    "allowlist",
                    &at(path, k),
                    "must be a non-blank string (raw, not a value reference)",
                );
            }
        }
        match o.get("type").and_then(Value::as_str) {
            Some("literal") => {}
            Some("regex") => {
                if regex::Regex::new(o.get("value").and_then(Value::as_str).unwrap_or_default())
                    .is_err()
                {
                    self.bad(
                        "allowlist",
                        &at(path, "value"),
                        "not a valid regular expression",
                    );
                }
            }
            _ => self.bad("allowlist", &at(path, "type"), "must be literal or regex"),
        }
    }

    fn dashboard(
        &mut self,
        data: &Value,
        path: &str,
        ids: &BTreeMap<String, BTreeSet<String>>,
        first: bool,
    ) {
        let Some(o) = self.keys(
            data,
            path,
            &[
                "summary",
                "description",
                "properties",
                "requires",
                "owner",
                "created_at",
                "type",
            ],
            &["title", "search", "state"],
        ) else {
            return;
        };
        if self
            .vr_str(o, "title", path)
            .is_some_and(|t| t.trim().is_empty())
        {
            self.bad(
                "widget-mapping",
                &at(path, "title"),
                "a dashboard needs a title",
            );
        }
        for k in ["summary", "description"] {
            if o.contains_key(k) {
                self.vr_str(o, k, path);
            }
        }
        if let Some(t) = o.get("type") {
            if t != "DASHBOARD" && t != "SEARCH" {
                self.bad(
                    "widget-mapping",
                    &at(path, "type"),
                    "must be DASHBOARD or SEARCH",
                );
            }
        }
        let sp = at(path, "search");
        let Some(search) = self.keys(
            &o["search"],
            &sp,
            &["parameters", "requires", "owner", "created_at"],
            &["queries"],
        ) else {
            return;
        };
        let queries = list(search.get("queries"));
        if queries.is_empty() {
            self.bad(
                "widget-mapping",
                &at(&sp, "queries"),
                "a dashboard needs a query (Graylog fails the upload without one)",
            );
        }
        let mut search_types: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        let mut all_st = BTreeSet::new();
        for (i, q) in queries.iter().enumerate() {
            let qp = idx(&at(&sp, "queries"), i);
            let Some(qo) = self.keys(
                q,
                &qp,
                &["filter", "filters", "search_types"],
                &["id", "timerange", "query"],
            ) else {
                continue;
            };
            let qid = qo
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if qid.is_empty() || search_types.contains_key(&qid) {
                self.bad(
                    "widget-mapping",
                    &at(&qp, "id"),
                    "query ids must be non-blank and unique",
                );
            }
            self.timerange(&q["timerange"], &at(&qp, "timerange"));
            self.backend_query(&q["query"], &at(&qp, "query"));
            let sts = list(qo.get("search_types"));
            let mut mine = BTreeMap::new();
            for (j, st) in sts.iter().enumerate() {
                let stp = idx(&at(&qp, "search_types"), j);
                let sid = st["id"].as_str().unwrap_or_default().to_owned();
                if sid.is_empty() || !all_st.insert(sid.clone()) {
                    self.bad(
                        "widget-mapping",
                        &at(&stp, "id"),
                        "search type ids must be non-blank and unique",
                    );
                }
                self.pivot(st, &stp, ids, first && i == 0 && j == 0);
                mine.insert(sid, st.clone());
            }
            search_types.insert(qid, mine);
        }
        let stp = at(path, "state");
        let Some(state) = o.get("state").and_then(Value::as_object) else {
            self.bad(
                "widget-mapping",
                &stp,
                "must be an object keyed by query id",
            );
            return;
        };
        let state_keys: BTreeSet<&String> = state.keys().collect();
        let query_keys: BTreeSet<&String> = search_types.keys().collect();
        if state_keys != query_keys {
            self.bad(
                "widget-mapping",
                &stp,
                format!("state keys {state_keys:?} are not the query ids {query_keys:?}"),
            );
        }
        for (qid, view) in state {
            let vp = at(&stp, qid);
            let Some(vo) = self.keys(
                view,
                &vp,
                &[
                    "titles",
                    "display_mode_settings",
                    "formatting",
                    "selected_fields",
                    "static_message_list_id",
                ],
                &["widgets", "widget_mapping", "positions"],
            ) else {
                continue;
            };
            let mine = search_types.get(qid).cloned().unwrap_or_default();
            let mapping = map(vo.get("widget_mapping"));
            let positions = map(vo.get("positions"));
            let widgets = list(vo.get("widgets"));
            let mut widget_ids = BTreeSet::new();
            for (k, w) in widgets.iter().enumerate() {
                let wp = idx(&at(&vp, "widgets"), k);
                let wid = w["id"].as_str().unwrap_or_default().to_owned();
                if wid.is_empty() || !widget_ids.insert(wid.clone()) {
                    self.bad(
                        "widget-mapping",
                        &at(&wp, "id"),
                        "widget ids must be non-blank and unique",
                    );
                }
                let mapped: Vec<String> = mapping
                    .get(&wid)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                if mapped.is_empty() {
                    self.bad(
                        "widget-mapping",
                        &at(&wp, "id"),
                        format!("widget `{wid}` has no search type in widget_mapping"),
                    );
                }
                let targets: Vec<Value> = mapped
                    .iter()
                    .filter_map(|sid| {
                        let t = mine.get(sid).cloned();
                        if t.is_none() {
                            self.bad(
                                "widget-mapping",
                                &at(&at(&vp, "widget_mapping"), &wid),
                                format!("`{sid}` is not a search type of query `{qid}`"),
                            );
                        }
                        t
                    })
                    .collect();
                match positions.get(&wid) {
                    None => self.bad(
                        "widget-mapping",
                        &at(&vp, "positions"),
                        format!("widget `{wid}` has no position"),
                    ),
                    Some(p) => self.position(p, &at(&at(&vp, "positions"), &wid)),
                }
                self.widget(w, &wp, &targets, ids);
            }
            for m in mapping.keys() {
                if !widget_ids.contains(m) {
                    self.bad(
                        "widget-mapping",
                        &at(&vp, "widget_mapping"),
                        format!("`{m}` is not a widget"),
                    );
                }
            }
        }
    }

    fn timerange(&mut self, t: &Value, path: &str) {
        match t.get("type").and_then(Value::as_str) {
            Some("relative") => {
                let ok = t.get("range").and_then(Value::as_u64).is_some()
                    || t.get("from").and_then(Value::as_u64).is_some();
                self.keys(t, path, &["range", "from", "to"], &["type"]);
                if !ok {
                    self.bad(
                        "pivot",
                        path,
                        "a relative time range needs `range` (seconds)",
                    );
                }
            }
            Some("absolute") => {
                self.keys(t, path, &[], &["type", "from", "to"]);
            }
            Some("keyword") => {
                self.keys(t, path, &["timezone"], &["type", "keyword"]);
            }
            Some("offset") => {
                self.keys(t, path, &[], &["type", "source", "id"]);
            }
            _ => self.bad(
                "pivot",
                path,
                "a time range is relative, absolute, keyword or offset",
            ),
        }
    }

    fn backend_query(&mut self, q: &Value, path: &str) {
        if q.is_null() {
            return;
        }
        if self.keys(q, path, &[], &["type", "query_string"]).is_some() {
            if q["type"] != "elasticsearch" {
                self.bad(
                    "pivot",
                    &at(path, "type"),
                    "queries are of type elasticsearch",
                );
            }
            self.query_fields(
                q["query_string"].as_str().unwrap_or_default(),
                &at(path, "query_string"),
            );
        }
    }

    fn position(&mut self, p: &Value, path: &str) {
        if self
            .keys(p, path, &[], &["col", "row", "height", "width"])
            .is_none()
        {
            return;
        }
        for k in ["col", "row", "height", "width"] {
            let ok = p[k].is_u64() || p[k] == "Infinity";
            if !ok {
                self.bad(
                    "widget-mapping",
                    &at(path, k),
                    "a position is an integer or \"Infinity\"",
                );
            }
        }
    }

    fn buckets(&mut self, list: &Value, path: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for (i, g) in list
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let gp = idx(path, i);
            let fields: Vec<String> = g["fields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            match g["type"].as_str() {
                Some("values") => {
                    self.keys(g, &gp, &["limit", "skip_empty_values"], &["type", "fields"]);
                }
                Some("time") => {
                    if self
                        .keys(g, &gp, &[], &["type", "fields", "interval"])
                        .is_some()
                    {
                        self.interval(&g["interval"], &at(&gp, "interval"), true);
                    }
                }
                _ => self.bad("pivot", &at(&gp, "type"), "a group is values or time"),
            }
            if fields.is_empty() {
                self.bad("pivot", &at(&gp, "fields"), "a group needs fields");
            }
            for f in &fields {
                if f != "timestamp" {
                    self.field(f, &at(&gp, "fields"));
                }
            }
            out.push(fields);
        }
        out
    }

    fn interval(&mut self, i: &Value, path: &str, search_type: bool) {
        match i["type"].as_str() {
            Some("auto") => {
                self.keys(i, path, &["scaling"], &["type"]);
            }
            Some("timeunit") if search_type => {
                if self.keys(i, path, &[], &["type", "timeunit"]).is_some() {
                    let t = i["timeunit"].as_str().unwrap_or_default();
                    let (n, unit) = t.split_at(t.len().saturating_sub(1));
                    let ok = n.parse::<u32>().is_ok_and(|n| n > 0)
                        && "smhdwMy".contains(unit)
                        && !unit.is_empty();
                    if !ok {
                        self.bad(
                            "pivot",
                            &at(path, "timeunit"),
                            format!("`{t}` is not a time unit such as 5m"),
                        );
                    }
                }
            }
            Some("timeunit") => {
                if self
                    .keys(i, path, &[], &["type", "value", "unit"])
                    .is_some()
                    && i["value"].as_u64().unwrap_or(0) == 0
                {
                    self.bad("pivot", &at(path, "value"), "must be a positive integer");
                }
            }
            _ => self.bad(
                "pivot",
                &at(path, "type"),
                "an interval is auto or timeunit",
            ),
        }
    }

    fn pivot(
        &mut self,
        st: &Value,
        path: &str,
        ids: &BTreeMap<String, BTreeSet<String>>,
        first: bool,
    ) {
        if st["type"] != "pivot" {
            self.bad(
                "pivot",
                &at(path, "type"),
                "the kit's search types are pivots",
            );
            return;
        }
        let Some(o) = self.keys(
            st,
            path,
            &[
                "name",
                "filter",
                "filters",
                "timerange",
                "query",
                "streams",
                "sort",
                "row_limit",
                "column_limit",
            ],
            &[
                "id",
                "type",
                "row_groups",
                "column_groups",
                "series",
                "rollup",
            ],
        ) else {
            return;
        };
        if !o.get("rollup").is_some_and(Value::is_boolean) {
            self.bad("pivot", &at(path, "rollup"), "must be true or false");
        }
        if let Some(t) = o.get("timerange").filter(|t| !t.is_null()) {
            self.timerange(t, &at(path, "timerange"));
        }
        if let Some(q) = o.get("query") {
            self.backend_query(q, &at(path, "query"));
        }
        self.stream_refs(o.get("streams"), &at(path, "streams"), ids);
        if first
            && o.get("streams")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        {
            self.bad(
                "reference",
                &at(path, "streams"),
                "Graylog empties the first search type's stream filter at upload when the streams do not exist yet: filter in the query instead",
            );
        }
        self.buckets(&st["row_groups"], &at(path, "row_groups"));
        self.buckets(&st["column_groups"], &at(path, "column_groups"));
        let mut seen = BTreeSet::new();
        for (i, s) in list(o.get("series")).iter().enumerate() {
            let sp = idx(&at(path, "series"), i);
            if let Some(id) = self.series(s, &sp, "pivot") {
                if !seen.insert(id.clone()) {
                    self.bad("pivot", &sp, format!("two series have the id `{id}`"));
                }
            }
        }
    }

    fn widget(
        &mut self,
        w: &Value,
        path: &str,
        targets: &[Value],
        ids: &BTreeMap<String, BTreeSet<String>>,
    ) {
        let Some(o) = self.keys(
            w,
            path,
            &[
                "filter",
                "filters",
                "timerange",
                "query",
                "streams",
                "description",
                "context",
            ],
            &["id", "type", "config"],
        ) else {
            return;
        };
        if let Some(q) = o.get("query") {
            self.backend_query(q, &at(path, "query"));
        }
        self.stream_refs(o.get("streams"), &at(path, "streams"), ids);
        let kind = o.get("type").and_then(Value::as_str).unwrap_or_default();
        if !["aggregation", "messages", "events", "text"].contains(&kind) {
            self.bad(
                "widget-mapping",
                &at(path, "type"),
                format!("`{kind}` is not a widget type Graylog registers"),
            );
            return;
        }
        if kind != "aggregation" {
            return;
        }
        let cp = at(path, "config");
        let Some(cfg) = self.keys(
            &o["config"],
            &cp,
            &[
                "visualization_config",
                "formatting_settings",
                "rollup",
                "event_annotation",
                "row_limit",
                "column_limit",
                "units",
            ],
            &[
                "row_pivots",
                "column_pivots",
                "series",
                "sort",
                "visualization",
            ],
        ) else {
            return;
        };
        let vis = cfg
            .get("visualization")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if ![
            "table", "bar", "line", "area", "pie", "numeric", "heatmap", "scatter", "map",
        ]
        .contains(&vis)
        {
            self.bad(
                "widget-mapping",
                &at(&cp, "visualization"),
                format!("`{vis}` is not a visualization"),
            );
        }
        for key in ["row_pivots", "column_pivots"] {
            for (i, p) in list(cfg.get(key)).iter().enumerate() {
                let pp = idx(&at(&cp, key), i);
                if self
                    .keys(p, &pp, &[], &["fields", "type", "config"])
                    .is_none()
                {
                    continue;
                }
                match p["type"].as_str() {
                    Some("values") => {
                        self.keys(
                            &p["config"],
                            &at(&pp, "config"),
                            &["limit", "skip_empty_values"],
                            &[],
                        );
                    }
                    Some("time") => {
                        if self
                            .keys(&p["config"], &at(&pp, "config"), &[], &["interval"])
                            .is_some()
                        {
                            self.interval(
                                &p["config"]["interval"],
                                &at(&at(&pp, "config"), "interval"),
                                false,
                            );
                        }
                    }
                    _ => self.bad(
                        "widget-mapping",
                        &at(&pp, "type"),
                        "a pivot is values or time",
                    ),
                }
                for f in list(Some(&p["fields"])) {
                    let f = f.as_str().unwrap_or_default();
                    if f != "timestamp" {
                        self.field(f, &at(&pp, "fields"));
                    }
                }
            }
        }
        let pivot_series: BTreeSet<String> = targets
            .iter()
            .flat_map(|t| list(Some(&t["series"])))
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect();
        for (i, s) in list(cfg.get("series")).iter().enumerate() {
            let sp = idx(&at(&cp, "series"), i);
            if self.keys(s, &sp, &[], &["config", "function"]).is_none() {
                continue;
            }
            let function = s["function"].as_str().unwrap_or_default();
            if super::pack::pivot_series(function).is_none() {
                self.bad(
                    "widget-mapping",
                    &at(&sp, "function"),
                    format!("`{function}` is not a series function such as avg(field)"),
                );
            }
            let name = s["config"]["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(function);
            if !targets.is_empty() && !pivot_series.contains(name) {
                self.bad(
                    "widget-mapping",
                    &sp,
                    format!("the widget's series `{name}` is not a series of its search type (the widget stays empty)"),
                );
            }
        }
    }
}

/// The array `v` holds, or none.
fn list(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The object `v` holds, or an empty one.
fn map(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

/// Whether a JSON value is of a content-pack value type (Graylog's
/// ReferenceConverter is strict: a double needs a decimal point).
fn json_fits(v: &Value, kind: &str) -> bool {
    match kind {
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "long" => v.is_i64() || v.is_u64(),
        "double" | "float" => v.is_f64(),
        _ => false,
    }
}

/// Graylog's message field names (`Message.validKey`).
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'@' | b'_' | b'-'))
}

/// The lowest server version a constraint range allows (`>=6.1.0`, `^6.1`,
/// `6.x`, `>=6.0.0 <8.0.0`).
fn parse_range_min(range: &str) -> Option<Version> {
    let first = range.split_whitespace().next()?;
    let v = first.trim_start_matches(['>', '=', '^', '~']);
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        None | Some("x") | Some("*") => 0,
        Some(m) => m.parse().ok()?,
    };
    Some((major, minor))
}

fn min_version(entity: &Value) -> Version {
    entity["constraints"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .filter(|c| c["type"] == "server-version")
                .find_map(|c| parse_range_min(c["version"].as_str()?))
        })
        .unwrap_or((0, 0))
}

fn first_dashboard(entities: &[Value]) -> usize {
    entities
        .iter()
        .position(|e| e["type"]["name"] == "dashboard")
        .unwrap_or(usize::MAX)
}

/// The fields a Lucene query string names: `name:…` and `_exists_:name`
/// (outside quotes).
pub fn fields_in_query(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut word = String::new();
    let mut after_exists = false;
    let flush = |word: &mut String, out: &mut Vec<String>, after_exists: &mut bool| {
        if *after_exists && !word.is_empty() {
            out.push(std::mem::take(word));
            *after_exists = false;
        }
        word.clear();
    };
    for c in q.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                word.clear();
            }
            _ if in_quotes => {}
            ':' => {
                if word == "_exists_" {
                    after_exists = true;
                    word.clear();
                } else if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-') => word.push(c),
            _ => flush(&mut word, &mut out, &mut after_exists),
        }
    }
    flush(&mut word, &mut out, &mut after_exists);
    out.retain(|f| f != "_exists_");
    out
}

/// The fields a template names: `${source.name}`.
fn template_fields(t: &str) -> Vec<String> {
    t.split("${source.")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(f, _)| f.to_owned()))
        .collect()
}
