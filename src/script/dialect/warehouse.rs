//! What the Snowflake and BigQuery scripts share. Neither engine has wrap-around 64-bit
//! arithmetic or a fold over an array in SQL, so the node hash, the profile name and the
//! sequential replay are JavaScript user-defined functions (`queries/script/warehouse_*.js`,
//! ES5, the same text in both), and so are the helpers whose exact result SQL cannot give
//! there (the kind of a JSON value, text ordered by its bytes). The identity stage's label
//! propagation is the same rounds in each engine's scripting loop.

/// The JavaScript of the identity functions: `cohortNode`, `cohortProfile`, `cohortReplay`.
pub(super) const IDENTITY_JS: &str = include_str!("../../../queries/script/warehouse_identity.js");

/// The JavaScript of the helpers: `cohortModePick`, `cohortSortedDistinct`, `cohortJsonKind`.
pub(super) const HELPERS_JS: &str = include_str!("../../../queries/script/warehouse_helpers.js");

/// One JavaScript function of a script: `name(args) RETURNS returns`, its body `js` followed
/// by `return call;`.
pub(super) struct JsFunction {
    pub name: &'static str,
    pub args: &'static [(&'static str, &'static str)],
    pub returns: &'static str,
    pub js: &'static str,
    pub call: &'static str,
    pub doc: &'static str,
}

impl JsFunction {
    /// `name(a T, b U)`.
    pub fn signature(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|(n, t)| format!("{n} {t}")).collect();
        format!("{}({})", self.name, args.join(", "))
    }

    /// The comment lines above the definition.
    pub fn comment(&self) -> String {
        self.doc.lines().map(|l| format!("-- {l}\n")).collect()
    }

    /// The function's body: the included text, then the call.
    pub fn body(&self) -> String {
        format!("{}\nreturn {};", self.js.trim_end(), self.call)
    }
}

/// The statements of one round of the label propagation (see `components` of each engine):
/// `id_components_next` takes each identifier's smallest label among itself and its
/// neighbours, `id_components_jumped` each label's label.
pub(super) fn components_round(indent: &str) -> String {
    let sql = "DROP TABLE IF EXISTS id_components_next;\n\
               CREATE TABLE id_components_next AS\n\
               SELECT c.node, least(c.component, coalesce(m.component, c.component)) AS component\n\
               FROM id_components c\n\
               LEFT JOIN (\n\
               \x20 SELECT a.node, MIN(l.component) AS component\n\
               \x20 FROM id_adjacency a\n\
               \x20 JOIN id_components l ON l.node = a.nbr\n\
               \x20 GROUP BY a.node\n\
               ) AS m ON m.node = c.node;\n\
               DROP TABLE IF EXISTS id_components_jumped;\n\
               CREATE TABLE id_components_jumped AS\n\
               SELECT n.node, least(n.component, coalesce(p.component, n.component)) AS component\n\
               FROM id_components_next n\n\
               LEFT JOIN id_components_next p ON p.node = n.component;";
    sql.lines().map(|l| format!("{indent}{l}\n")).collect()
}

/// The query counting the labels a round lowered, after `SELECT count(*)` (and `INTO` where
/// the engine takes one).
pub const CHANGED_FROM: &str = "FROM id_components_jumped j\n\
     JOIN id_components c ON c.node = j.node\n\
     WHERE j.component < c.component";

/// The statements that end a round: the jumped labels become the labels.
pub(super) fn components_swap(indent: &str) -> String {
    [
        "DROP TABLE id_components;",
        "DROP TABLE id_components_next;",
        "ALTER TABLE id_components_jumped RENAME TO id_components;",
    ]
    .iter()
    .map(|l| format!("{indent}{l}\n"))
    .collect()
}

/// The comment above the components loop.
pub const COMPONENTS_DOC: &str = "-- Min-label propagation with pointer jumping, in the engine's scripting. Every round each\n\
     -- identifier takes the smallest label among itself and its neighbours, then each label\n\
     -- jumps to its label's label. Labels only decrease and are always a node of the same\n\
     -- component. Loop condition: stop after a round in which no label changed; then both ends\n\
     -- of every edge carry the same label, so each component carries one label, its smallest\n\
     -- node (which never changes).\n";

/// The comment above the replay.
pub const REPLAY_DOC: &str = "-- Segment's sequential rule, as one call of cohort_replay per violating component with its\n\
     -- events in order (the rule itself: queries/script/warehouse_identity.js). The event's\n\
     -- identifiers are sorted by rank, then value; node codes cross into JavaScript as text.\n\
     -- A component of E events costs O(E^2) in one call, and its events must fit in one array\n\
     -- value of the engine.\n";

/// Each rank's limit, as the elements of an array literal.
pub(super) fn limit_list(limits: &[u64]) -> String {
    limits
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key a text-ordered `MIN_BY` / `MAX_BY` sorts by for the order `(timestamp, message
/// id)`: the time at a fixed width, then the id. `time` renders a time expression as text.
pub(super) fn order_key(by: &[(String, bool)], time: impl Fn(&str) -> String) -> String {
    let mut parts = Vec::new();
    for (i, (e, _)) in by.iter().enumerate() {
        parts.push(if i == 0 { time(e) } else { e.clone() });
    }
    parts.join(" || ")
}
