//! AlertManager's routing tree as typed structs, and the matcher that says which receivers
//! get an alert — the same walk as AlertManager's `dispatch.Route.Match` (depth first,
//! children in order, stop at the first matching child unless it has `continue: true`, a
//! route with no matching child is itself the match). Pure: parsed from the config YAML
//! AlertManager reports, checked against `amtool config routes test` in the tests.
use std::collections::BTreeMap;

use app::api::{RouteNode, RouteTestResult};
use serde::Deserialize;

message_error!(
    /// Why a matcher, a label set or a routing config cannot be used, in AlertManager's terms.
    ParseError
);

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    re: Option<regex::Regex>,
}

impl Matcher {
    pub fn new(name: &str, op: Op, value: &str) -> Result<Self, ParseError> {
        let re = match op {
            // AlertManager anchors regexes at both ends.
            Op::Re | Op::NotRe => Some(regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| format!("bad regex {value:?}: {e}"))?),
            _ => None,
        };
        Ok(Self { name: name.into(), op, value: value.into(), re })
    }

    /// `name="value"`, `name!="v"`, `name=~"re"`, `name!~"re"` (quotes optional).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim().trim_start_matches('{').trim_end_matches('}').trim();
        let (pos, op, len) = ["=~", "!~", "!=", "="]
            .iter()
            .filter_map(|o| s.find(o).map(|p| (p, *o)))
            .min_by_key(|(p, o)| (*p, std::cmp::Reverse(o.len())))
            .map(|(p, o)| {
                let op = match o {
                    "=~" => Op::Re,
                    "!~" => Op::NotRe,
                    "!=" => Op::Ne,
                    _ => Op::Eq,
                };
                (p, op, o.len())
            })
            .ok_or_else(|| format!("matcher {s:?} has no operator (=, !=, =~, !~)"))?;
        let name = s[..pos].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ParseError::from(format!("matcher {s:?}: bad label name {name:?}")));
        }
        let raw = s[pos + len..].trim();
        let value = if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
            serde_json::from_str::<String>(raw).map_err(|e| format!("matcher {s:?}: {e}"))?
        } else {
            raw.to_string()
        };
        Self::new(name, op, &value)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        // A missing label is the empty string (Prometheus semantics).
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match self.op {
            Op::Eq => v == self.value,
            Op::Ne => v != self.value,
            Op::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            Op::NotRe => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    pub fn display(&self) -> String {
        let op = match self.op {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        };
        format!("{}{op}{:?}", self.name, self.value)
    }
}

/// A route with the parent's settings inherited (receiver, grouping, timings).
#[derive(Clone, Debug)]
pub struct Route {
    pub receiver: String,
    pub matchers: Vec<Matcher>,
    pub cont: bool,
    pub group_by: Vec<String>,
    pub group_wait: String,
    pub group_interval: String,
    pub repeat_interval: String,
    pub routes: Vec<Route>,
}

#[derive(Deserialize, Default)]
struct RawRoute {
    receiver: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default, rename = "match")]
    match_eq: BTreeMap<String, String>,
    #[serde(default)]
    match_re: BTreeMap<String, String>,
    #[serde(default, rename = "continue")]
    cont: bool,
    group_by: Option<Vec<String>>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
struct RawConfig {
    route: RawRoute,
    #[serde(default)]
    receivers: Vec<serde_yaml::Value>,
}

/// A receiver and the kinds of integration it has (email, slack, webhook…).
#[derive(Clone, Debug, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub kinds: Vec<String>,
    /// Where notifications go: email addresses, Slack channels, webhook URLs (AlertManager
    /// reports Slack `api_url`s as `<secret>`, so channels are what identifies Slack).
    pub targets: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub root: Route,
    pub receivers: Vec<Receiver>,
}

impl Config {
    pub fn parse(yaml: &str) -> Result<Self, ParseError> {
        let raw: RawConfig = serde_yaml::from_str(yaml).map_err(|e| format!("alertmanager config: {e}"))?;
        let defaults = Route {
            receiver: String::new(),
            matchers: vec![],
            cont: false,
            group_by: vec![],
            group_wait: "30s".into(),
            group_interval: "5m".into(),
            repeat_interval: "4h".into(),
            routes: vec![],
        };
        let root = build(raw.route, &defaults)?;
        if root.receiver.is_empty() {
            return Err(ParseError::from("the root route has no receiver"));
        }
        let receivers = raw.receivers.iter().map(receiver).collect::<Result<Vec<_>, _>>()?;
        let cfg = Config { root, receivers };
        if let Some(missing) = cfg.all_routes().iter().map(|r| &r.receiver).find(|r| !cfg.receivers.iter().any(|x| &x.name == *r)) {
            return Err(ParseError::from(format!("a route names receiver {missing:?}, which is not defined")));
        }
        Ok(cfg)
    }

    /// The root and every descendant, depth first.
    pub fn all_routes(&self) -> Vec<&Route> {
        fn walk<'a>(r: &'a Route, out: &mut Vec<&'a Route>) {
            out.push(r);
            r.routes.iter().for_each(|c| walk(c, out));
        }
        let mut out = vec![];
        walk(&self.root, &mut out);
        out
    }

    /// Receivers an alert with `labels` goes to, in AlertManager's order, with the path to each.
    pub fn test(&self, labels: &BTreeMap<String, String>) -> RouteTestResult {
        let mut hits = vec![];
        route_match(&self.root, labels, "root".into(), &mut hits);
        RouteTestResult {
            receivers: hits.iter().map(|(r, _)| r.receiver.clone()).collect(),
            paths: hits.iter().map(|(_, p)| p.clone()).collect(),
            group_by: hits.iter().map(|(r, _)| r.group_by.clone()).collect(),
        }
    }

    pub fn tree(&self) -> RouteNode {
        fn node(r: &Route, path: String, rx: &[Receiver]) -> RouteNode {
            RouteNode {
                receiver: r.receiver.clone(),
                kinds: rx.iter().find(|x| x.name == r.receiver).map(|x| x.kinds.clone()).unwrap_or_default(),
                matchers: r.matchers.iter().map(Matcher::display).collect(),
                cont: r.cont,
                group_by: r.group_by.clone(),
                group_wait: r.group_wait.clone(),
                group_interval: r.group_interval.clone(),
                repeat_interval: r.repeat_interval.clone(),
                children: r.routes.iter().enumerate().map(|(i, c)| node(c, format!("{path}.{i}"), rx)).collect(),
                path,
            }
        }
        node(&self.root, "root".into(), &self.receivers)
    }
}

fn build(raw: RawRoute, parent: &Route) -> Result<Route, ParseError> {
    let mut matchers = raw.matchers.iter().map(|m| Matcher::parse(m)).collect::<Result<Vec<_>, _>>()?;
    for (k, v) in &raw.match_eq {
        matchers.push(Matcher::new(k, Op::Eq, v)?);
    }
    for (k, v) in &raw.match_re {
        matchers.push(Matcher::new(k, Op::Re, v)?);
    }
    let mut r = Route {
        receiver: raw.receiver.unwrap_or_else(|| parent.receiver.clone()),
        matchers,
        cont: raw.cont,
        group_by: raw.group_by.unwrap_or_else(|| parent.group_by.clone()),
        group_wait: raw.group_wait.unwrap_or_else(|| parent.group_wait.clone()),
        group_interval: raw.group_interval.unwrap_or_else(|| parent.group_interval.clone()),
        repeat_interval: raw.repeat_interval.unwrap_or_else(|| parent.repeat_interval.clone()),
        routes: vec![],
    };
    r.routes = raw.routes.into_iter().map(|c| build(c, &r)).collect::<Result<_, _>>()?;
    Ok(r)
}

fn route_match<'a>(r: &'a Route, labels: &BTreeMap<String, String>, path: String, out: &mut Vec<(&'a Route, String)>) -> bool {
    if !r.matchers.iter().all(|m| m.matches(labels)) {
        return false;
    }
    let before = out.len();
    for (i, c) in r.routes.iter().enumerate() {
        if route_match(c, labels, format!("{path}.{i}"), out) && !c.cont {
            break;
        }
    }
    if out.len() == before {
        out.push((r, path));
    }
    true
}

fn receiver(v: &serde_yaml::Value) -> Result<Receiver, ParseError> {
    let name = v.get("name").and_then(|n| n.as_str()).ok_or("a receiver has no name")?.to_string();
    let mut kinds = vec![];
    let mut targets = vec![];
    if let Some(m) = v.as_mapping() {
        for (k, cfgs) in m {
            let Some(k) = k.as_str().and_then(|k| k.strip_suffix("_configs")) else { continue };
            kinds.push(k.to_string());
            for c in cfgs.as_sequence().into_iter().flatten() {
                for key in ["to", "channel", "url"] {
                    if let Some(t) = c.get(key).and_then(|t| t.as_str()) {
                        targets.push(t.to_string());
                    }
                }
            }
        }
    }
    kinds.sort();
    Ok(Receiver { name, kinds, targets })
}

/// Labels from `a=b, c="d"` or one per line; an empty input is an empty set.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut out = BTreeMap::new();
    for part in s.split([',', '\n']).map(str::trim).filter(|p| !p.is_empty()) {
        let m = Matcher::parse(part)?;
        if m.op != Op::Eq {
            return Err(ParseError::from(format!("{part:?}: a label is name=value")));
        }
        out.insert(m.name, m.value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = include_str!("../../../dev/alertmanager/alertmanager.yml");

    fn labels(s: &str) -> BTreeMap<String, String> {
        parse_labels(s).unwrap()
    }

    #[test]
    fn the_stack_config_has_4_routes_and_5_receivers() {
        let c = Config::parse(CFG).unwrap();
        assert_eq!(c.root.routes.len(), 4);
        assert_eq!(c.receivers.len(), 5);
        let kinds: Vec<_> = c.receivers.iter().map(|r| (r.name.as_str(), r.kinds.join("+"))).collect();
        assert!(kinds.contains(&("critical-pager", "email+slack".into())), "{kinds:?}");
        // Children inherit grouping and timings unless they override them.
        assert_eq!(c.root.routes[2].group_wait, "5s");
        assert_eq!(c.root.routes[3].group_wait, "10s");
        assert_eq!(c.root.routes[0].group_by, vec!["alertname", "severity"]);
    }

    #[test]
    fn continue_and_fallthrough() {
        let c = Config::parse(CFG).unwrap();
        let t = |s: &str| c.test(&labels(s)).receivers;
        assert_eq!(t("team=database, severity=critical"), ["dba-email", "critical-pager"]);
        assert_eq!(t("team=streaming, severity=warning"), ["streaming-slack", "warning-slack"]);
        assert_eq!(t("team=database"), ["dba-email"]);
        assert_eq!(t("severity=info"), ["default-email"]);
        assert_eq!(t(""), ["default-email"]);
        assert_eq!(c.test(&labels("severity=critical")).paths, ["root.2"]);
    }

    #[test]
    fn matcher_syntax() {
        let m = Matcher::parse(r#"severity=~"crit.*|warn""#).unwrap();
        assert!(m.matches(&labels("severity=critical")));
        assert!(!m.matches(&labels("severity=xcritical")), "anchored");
        assert!(Matcher::parse("a!=b").unwrap().matches(&labels("")));
        assert!(Matcher::parse("a!~\"x+\"").unwrap().matches(&labels("a=y")));
        assert_eq!(Matcher::parse("a=\"q\\\"x\"").unwrap().value, "q\"x");
        assert!(Matcher::parse("novalue").unwrap_err().to_string().contains("no operator"));
        assert!(Matcher::parse("a=~\"(\"").unwrap_err().to_string().contains("bad regex"));
        assert!(parse_labels("a=~b").is_err());
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        assert!(Config::parse("route: {receiver: x}\nreceivers: [{name: y}]").unwrap_err().to_string().contains("\"x\""));
        assert!(Config::parse("route: {}\nreceivers: []").unwrap_err().to_string().contains("root route"));
        assert!(Config::parse("route: [").is_err());
    }
}
