//! Just enough of an HTML reader for what headless Chromium's `--dump-dom` prints: the
//! browser serialises its DOM canonically (lower-case tags, every attribute value in double
//! quotes, `&`, `<`, `>`, `"` and no-break spaces escaped, every non-void element closed), so a
//! tag scanner with a stack builds the tree. Script and style bodies are kept as raw text.

/// An element or a text node.
#[derive(Debug, Clone)]
pub enum Node {
    Element(Element),
    Text(String),
}

#[derive(Debug, Clone, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Decode the entities the serialiser writes (and numeric ones).
pub fn decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parse a start tag's inside (`name a="b" c`) into its name and attributes.
fn start_tag(inside: &str) -> (String, Vec<(String, String)>) {
    let inside = inside.trim_end_matches('/');
    let name_end = inside
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(inside.len());
    let name = inside[..name_end].to_ascii_lowercase();
    let mut attrs = Vec::new();
    let mut rest = inside[name_end..].trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let key = rest[..key_end].to_ascii_lowercase();
        rest = rest[key_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, next) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let close = after[1..].find(q).map_or(after.len(), |i| i + 1);
                    (&after[1..close], after.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = next.trim_start();
            decode(value)
        } else {
            String::new()
        };
        if !key.is_empty() {
            attrs.push((key, value));
        }
    }
    (name, attrs)
}

/// The document's tree under a synthetic root element.
pub fn parse(html: &str) -> Element {
    let mut stack = vec![Element {
        name: "#root".into(),
        ..Element::default()
    }];
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            push_text(&mut stack, rest);
            break;
        };
        push_text(&mut stack, &rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else {
            push_text(&mut stack, rest);
            break;
        };
        let inside = &rest[1..gt];
        rest = &rest[gt + 1..];
        if inside.starts_with('!') || inside.starts_with('?') {
            continue;
        }
        if let Some(closing) = inside.strip_prefix('/') {
            let name = closing.trim().to_ascii_lowercase();
            // Close up to the matching open element (a stray end tag is ignored).
            if let Some(at) = stack.iter().rposition(|e| e.name == name)
                && at > 0
            {
                while stack.len() > at {
                    let done = stack.pop().expect("stack holds the element");
                    let parent = stack.last_mut().expect("the root stays");
                    parent.children.push(Node::Element(done));
                }
            }
            continue;
        }
        let (name, attrs) = start_tag(inside);
        let element = Element {
            name: name.clone(),
            attrs,
            children: Vec::new(),
        };
        if VOID.contains(&name.as_str()) || inside.ends_with('/') {
            let parent = stack.last_mut().expect("the root stays");
            parent.children.push(Node::Element(element));
            continue;
        }
        if name == "script" || name == "style" {
            let end = format!("</{name}");
            let body_end = rest.find(&end).unwrap_or(rest.len());
            let mut element = element;
            element
                .children
                .push(Node::Text(rest[..body_end].to_string()));
            rest = &rest[body_end..];
            rest = rest.find('>').map_or("", |i| &rest[i + 1..]);
            let parent = stack.last_mut().expect("the root stays");
            parent.children.push(Node::Element(element));
            continue;
        }
        stack.push(element);
    }
    while stack.len() > 1 {
        let done = stack.pop().expect("stack holds the element");
        let parent = stack.last_mut().expect("the root stays");
        parent.children.push(Node::Element(done));
    }
    stack.pop().expect("the root")
}

fn push_text(stack: &mut [Element], text: &str) {
    if !text.is_empty() {
        let parent = stack.last_mut().expect("the root stays");
        parent.children.push(Node::Text(decode(text)));
    }
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_ascii_whitespace().any(|c| c == class))
    }

    /// Every element below this one (depth first, document order) that `pred` accepts.
    pub fn find_all(&self, pred: &dyn Fn(&Element) -> bool) -> Vec<&Element> {
        let mut out = Vec::new();
        self.collect(pred, &mut out);
        out
    }

    fn collect<'a>(&'a self, pred: &dyn Fn(&Element) -> bool, out: &mut Vec<&'a Element>) {
        for child in &self.children {
            if let Node::Element(e) = child {
                if pred(e) {
                    out.push(e);
                }
                e.collect(pred, out);
            }
        }
    }

    /// The first element below this one that `pred` accepts.
    pub fn find(&self, pred: &dyn Fn(&Element) -> bool) -> Option<&Element> {
        self.find_all(pred).into_iter().next()
    }

    /// The element below with this `id`.
    pub fn by_id(&self, id: &str) -> Option<&Element> {
        self.find(&|e| e.attr("id") == Some(id))
    }

    /// The text inside, whitespace runs collapsed to one space, trimmed (script and style
    /// bodies excluded, as a reader does not see them).
    pub fn text(&self) -> String {
        let mut raw = String::new();
        self.text_into(&mut raw);
        raw.split(|c: char| c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn text_into(&self, out: &mut String) {
        if self.name == "script" || self.name == "style" {
            return;
        }
        for child in &self.children {
            match child {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => {
                    out.push(' ');
                    e.text_into(out);
                    out.push(' ');
                }
            }
        }
    }

    /// This element's `<td data-field="FIELD">` (or `<th>`) below, by field.
    pub fn field(&self, field: &str) -> Option<&Element> {
        self.find(&|e| e.attr("data-field") == Some(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chromium_serialised_tables() {
        let html = r#"<!DOCTYPE html><html><head><style>td > b { x: "<" }</style></head><body>
            <table id="queues"><tbody><tr data-queue="q&amp;1" class="a b">
            <td data-field="visible">1,2<b>3</b></td><td data-field="age">n/a</td>
            <td><svg class="spark"><path d="M0 0"></path></svg></td></tr></tbody></table>
            <br><p>5&nbsp;&lt;6&#62;</p><script>if (a<b) {}</script></body></html>"#;
        let doc = parse(html);
        let table = doc.by_id("queues").unwrap();
        let rows = table.find_all(&|e| e.name == "tr");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].attr("data-queue"), Some("q&1"));
        assert!(rows[0].has_class("b"));
        assert_eq!(rows[0].field("visible").unwrap().text(), "1,2 3");
        assert!(rows[0].find(&|e| e.has_class("spark")).is_some());
        let p = doc.find(&|e| e.name == "p").unwrap();
        assert_eq!(p.text(), "5 <6>");
        assert!(!doc.text().contains("a<b"), "script bodies are not text");
    }
}
