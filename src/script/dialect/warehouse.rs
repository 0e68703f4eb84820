//! What the Snowflake and BigQuery scripts share. Neither engine has wrap-around 64-bit
//! arithmetic or a fold over an array in SQL, so the node hash, the profile name and the
//! sequential replay are JavaScript user-defined functions (`queries/script/warehouse_*.js`,
//! ES5, the same text in both), and so are the helpers whose exact result SQL cannot give
//! there (the kind of a JSON value, text ordered by its bytes). The identity stage's label
//! propagation is the same rounds in each engine's scripting loop.

/// The JavaScript of the identity functions: `cohortNode`, `cohortProfile`, `cohortReplay`.
const IDENTITY_JS: &str = include_str!("../../../queries/script/warehouse_identity.js");

/// The JavaScript of the helpers: `cohortModePick`, `cohortSortedDistinct`, `cohortJsonKind`.
const HELPERS_JS: &str = include_str!("../../../queries/script/warehouse_helpers.js");

/// What an argument or result of a JavaScript function holds; each engine names its type.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Text,
    /// A small number (GoogleSQL passes no INT64 into JavaScript).
    Float,
    TextArray,
    /// `cohort_replay`'s events: `[{seq, m, us, ids: [{n, t}]}]`.
    Events,
    /// A number per rank: its limit, or its window in microseconds (0 for ever).
    Limits,
    /// `cohort_replay`'s result: `{owner: [{n, t, p}], dropped: [{seq, m, n, broken}]}`.
    State,
}

/// One JavaScript function of a script: `name(args) RETURNS returns`, its body the file `js`
/// followed by `return entry(args);`.
pub(super) struct JsFunction {
    pub name: &'static str,
    pub args: &'static [(&'static str, Kind)],
    pub returns: Kind,
    pub js: &'static str,
    pub entry: &'static str,
    pub doc: &'static str,
}

/// The JavaScript functions both scripts define.
pub(super) const FUNCTIONS: [JsFunction; 6] = [
    JsFunction {
        name: "cohort_mode_pick",
        args: &[("vs", Kind::TextArray), ("k", Kind::Float)],
        returns: Kind::Text,
        js: HELPERS_JS,
        entry: "cohortModePick",
        doc: "cohort_mode_pick(values, min_frequency): the most frequent non-null value, ties broken by\nthe smallest value, or null when it occurs fewer than min_frequency times.",
    },
    JsFunction {
        name: "cohort_sorted_distinct",
        args: &[("vs", Kind::TextArray)],
        returns: Kind::TextArray,
        js: HELPERS_JS,
        entry: "cohortSortedDistinct",
        doc: "cohort_sorted_distinct(values): the distinct non-null values, sorted; null when none\n(BigQuery stores a null array as an empty one).",
    },
    JsFunction {
        name: "cohort_json_kind",
        args: &[("j", Kind::Text), ("k", Kind::Text)],
        returns: Kind::Text,
        js: HELPERS_JS,
        entry: "cohortJsonKind",
        doc: "cohort_json_kind(json, key): what the top-level key holds (null, bool, int, float,\ntimestamp, string, object, array), or null when the key is absent.",
    },
    JsFunction {
        name: "cohort_id_node_text",
        args: &[("id_type", Kind::Text), ("id_value", Kind::Text)],
        returns: Kind::Text,
        js: IDENTITY_JS,
        entry: "cohortNode",
        doc: "The node code of an identifier as decimal text: FNV-1a over the UTF-8 bytes of\n`type NUL value`, then the 64-bit finalizer; the same bits as Cohort's node_code.",
    },
    JsFunction {
        name: "cohort_id_profile_text",
        args: &[("node", Kind::Text)],
        returns: Kind::Text,
        js: IDENTITY_JS,
        entry: "cohortProfile",
        doc: "A new profile's id: `use_` and the 16 hex digits of the node (decimal text).",
    },
    JsFunction {
        name: "cohort_replay",
        args: &[
            ("events", Kind::Events),
            ("limits", Kind::Limits),
            ("windows", Kind::Limits),
        ],
        returns: Kind::State,
        js: IDENTITY_JS,
        entry: "cohortReplay",
        doc: "Segment's sequential rule over one component's events (see cohortReplay).",
    },
];

impl JsFunction {
    /// `-- doc` lines, then `CREATE <head> name(a T, b U)` and `RETURNS T` in the engine's
    /// types `ty`.
    pub fn header(&self, head: &str, ty: impl Fn(Kind) -> &'static str) -> String {
        let doc: String = self.doc.lines().map(|l| format!("-- {l}\n")).collect();
        let args: Vec<String> = self
            .args
            .iter()
            .map(|(n, k)| format!("{n} {}", ty(*k)))
            .collect();
        format!(
            "{doc}CREATE {head} {}({})\nRETURNS {}",
            self.name,
            args.join(", "),
            ty(self.returns)
        )
    }

    /// The function's body: the included text, then the call of its entry with the arguments
    /// as JavaScript sees them (`arg`: Snowflake spells them in capitals).
    pub fn body(&self, arg: impl Fn(&str) -> String) -> String {
        let args: Vec<String> = self.args.iter().map(|(n, _)| arg(n)).collect();
        format!(
            "{}\nreturn {}({});",
            self.js.trim_end(),
            self.entry,
            args.join(", ")
        )
    }
}

/// `text`, each line indented by `indent` and ended by a newline.
pub(super) fn indented(text: &str, indent: &str) -> String {
    text.lines().map(|l| format!("{indent}{l}\n")).collect()
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
    indented(sql, indent)
}

/// The query counting the labels a round lowered, after `SELECT count(*)` (and `INTO` where
/// the engine takes one).
pub const CHANGED_FROM: &str = "FROM id_components_jumped j\n\
     JOIN id_components c ON c.node = j.node\n\
     WHERE j.component < c.component";

/// The statements that end a round: the jumped labels become the labels.
pub(super) fn components_swap(indent: &str) -> String {
    indented(
        "DROP TABLE id_components;\n\
         DROP TABLE id_components_next;\n\
         ALTER TABLE id_components_jumped RENAME TO id_components;",
        indent,
    )
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
